// The server side of a node's heartbeat stream: each request is one beat,
// handled in arrival order, each answered on the stream. An error (this
// manager is not the leader, the node was removed, a bad certificate) ends the
// stream with its status and metadata (the leader hint), as a unary call's
// error would: the agent reconnects where it says.
import type * as grpc from '@grpc/grpc-js';
import { statusOf } from './auth.js';

export type HeartbeatStream<Req, Res> = grpc.ServerDuplexStream<Req, Res>;

/** Answer every beat of `call` with `beat(req)`, one at a time; the first error ends the stream. */
export function serveHeartbeats<Req, Res>(call: HeartbeatStream<Req, Res>, beat: (req: Req) => Promise<Res>): void {
  let done = false;
  // One beat at a time: a beat that writes the node's new state to the store must land before
  // the next one reads it.
  let queue = Promise.resolve();
  const fail = (e: unknown) => {
    if (done) return;
    done = true;
    call.emit('error', statusOf(e));
  };
  call.on('data', (req: Req) => {
    queue = queue.then(async () => {
      if (done) return;
      try {
        const res = await beat(req);
        if (!done) call.write(res);
      } catch (e) {
        fail(e);
      }
    });
  });
  call.on('end', () => {
    void queue.then(() => {
      if (done) return;
      done = true;
      call.end();
    });
  });
  call.on('error', () => {
    done = true;
  });
  call.on('cancelled', () => {
    done = true;
  });
}
