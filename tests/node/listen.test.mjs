// The listening socket: a burst of connections is queued by the kernel instead of dropped,
// and a second server cannot take over a port that is in use.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { startServer, BIN, MODEL } from './helpers.mjs';

const BURST = 300;

// While the server is stopped (SIGSTOP) nothing calls accept(), so how many handshakes
// complete is exactly what the listen backlog holds. httplib's own backlog of 5 would let
// 6 through and leave the rest retransmitting SYNs (1, 3, 7, ... s): the CI failure this
// guards against was a load-test client that gave up after that backoff.
it(`the kernel queues a burst of ${BURST} connections while the server is not accepting`, { timeout: 60000 }, async () => {
  const server = await startServer();
  const port = Number(new URL(server.base).port);
  const sockets = [];
  try {
    server.proc.kill('SIGSTOP');
    let connected = 0;
    const all = Promise.all(Array.from({ length: BURST }, () => new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      sockets.push(s);
      s.on('connect', () => { connected++; resolve(); });
      s.on('error', resolve);
    })));
    await Promise.race([all, new Promise((r) => setTimeout(r, 3000))]);
    assert.equal(connected, BURST, `only ${connected} of ${BURST} handshakes completed within 3 s`);
  } finally {
    for (const s of sockets) s.destroy();
    server.proc.kill('SIGCONT');
    assert.equal((await server.stop()).code, 0);
  }
});

it('a second server on a port in use fails with a clear error', { timeout: 60000 }, async () => {
  const server = await startServer();
  try {
    const port = new URL(server.base).port;
    const second = spawn(BIN, ['serve', '--model', MODEL, '--host', '127.0.0.1', '--port', port, '--kv-cache-memory', '8M'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    second.stderr.on('data', (d) => { stderr += d; });
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => { second.kill('SIGKILL'); resolve('still running after 15 s'); }, 15000);
      second.on('exit', (c) => { clearTimeout(timer); resolve(c); });
    });
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`cannot bind 127\\.0\\.0\\.1:${port} \\(in use`));
    // The first server still answers.
    assert.equal((await fetch(`${server.base}/health`)).status, 200);
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});
