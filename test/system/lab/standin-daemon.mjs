// Stand-in for shoald in the lab tests: listens on --listen ip:port and
// answers every connection with its hostname, so a test can tell which host
// it reached. Plain JS so it runs without a build.
/* global process, console */
import net from 'node:net';
import os from 'node:os';

const i = process.argv.indexOf('--listen');
if (i < 0) {
  console.error('usage: standin-daemon.mjs --listen IP:PORT');
  process.exit(2);
}
const [host, port] = process.argv[i + 1].split(':');
const server = net.createServer((sock) => {
  sock.on('error', () => {});
  sock.end(`${os.hostname()}\n`);
});
server.listen(Number(port), host, () => console.log(`standin on ${os.hostname()} listening on ${host}:${port}`));
