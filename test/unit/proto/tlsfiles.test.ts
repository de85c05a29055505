// Reading a node's certificate and key as a pair while the node may be
// replacing them (a renewal writes the key, then the certificate).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RootCA } from '../../../manager/ca/index.js';
import { keyMatchesCert, readTlsFiles } from '../../../proto/tlsfiles.js';
import { tempDir } from '../../support/tempdir.js';

const a = RootCA.create({ clusterId: 'a' });
const b = RootCA.create({ clusterId: 'b' });

function files(cert: string, key: string) {
  const dir = tempDir('shoal-tls-');
  const f = { caFile: path.join(dir, 'ca.pem'), certFile: path.join(dir, 'node.pem'), keyFile: path.join(dir, 'node-key.pem') };
  writeFileSync(f.caFile, a.certPem);
  writeFileSync(f.certFile, cert);
  writeFileSync(f.keyFile, key);
  return f;
}

describe('keyMatchesCert', () => {
  it.each([
    ['the pair', a.certPem, a.keyPem!, true],
    ['another key', a.certPem, b.keyPem!, false],
    ['not PEM', 'nope', a.keyPem!, false],
    ['a key that is not PEM', a.certPem, 'nope', false],
  ])('%s', (_name, cert, key, want) => {
    expect(keyMatchesCert(cert, key)).toBe(want);
  });
});

describe('readTlsFiles', () => {
  it('reads a pair', () => {
    expect(readTlsFiles(files(a.certPem, a.keyPem!))).toEqual({ caPem: a.certPem, certPem: a.certPem, keyPem: a.keyPem });
  });

  it('refuses a key of another certificate after reading again, naming both files', () => {
    const f = files(a.certPem, b.keyPem!);
    expect(() => readTlsFiles(f, 3, 1)).toThrow(`the key ${f.keyFile} is not the key of the certificate ${f.certFile}`);
  });

  it('names a file it cannot read', () => {
    const f = files(a.certPem, a.keyPem!);
    expect(() => readTlsFiles({ ...f, certFile: '/nonexistent/node.pem' })).toThrow('cannot read the certificate /nonexistent/node.pem: ENOENT');
  });

  it('reads again while another process finishes replacing the pair', () => {
    // The new key is in place, its certificate not yet: another process writes it 100 ms later.
    const f = files(a.certPem, b.keyPem!);
    writeFileSync(`${f.certFile}.next`, b.certPem);
    spawn('sh', ['-c', `sleep 0.1; mv "${f.certFile}.next" "${f.certFile}"`], { stdio: 'ignore' });
    expect(readTlsFiles(f, 200, 10).certPem).toBe(b.certPem);
  });
});
