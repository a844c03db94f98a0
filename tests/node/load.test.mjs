// Bounded load test: 220 concurrent streaming requests on a 96-block KV pool (preemption),
// ~40% of clients disconnect at random points. Afterwards every KV block is free, the
// engine's invariant checker passes, and the server still answers.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, metrics } from './helpers.mjs';

const REQUESTS = 220;

// Deterministic pseudo-random numbers so failures reproduce.
function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

it('220 concurrent streams with random disconnects leave every block free', { timeout: 150000 }, async () => {
  const server = await startServer(['--num-kv-blocks', '96', '--block-size', '16', '--max-num-seqs', '64']);
  try {
    const client = server.client({ timeout: 120000 });
    const rand = rng(12345);
    const prompts = ['Once upon a time', 'The little dog', 'Lily and Ben went to the park', 'One day, a cat'];
    let disconnects = 0;
    let completed = 0;
    const jobs = Array.from({ length: REQUESTS }, async (_, i) => {
      const disconnectAfter = rand() < 0.4 ? Math.floor(rand() * 6) : -1;  // chunks before hanging up
      const maxTokens = 16 + Math.floor(rand() * 48);
      const stream = await client.completions.create({
        prompt: prompts[i % prompts.length] + ' '.repeat(i % 3), max_tokens: maxTokens, temperature: 0.8, seed: i, stream: true,
      });
      let chunks = 0;
      let finish = null;
      for await (const c of stream) {
        if (chunks === disconnectAfter) { disconnects++; stream.controller.abort(); return; }
        chunks++;
        finish = c.choices[0].finish_reason ?? finish;
      }
      assert.ok(finish === 'length' || finish === 'stop', `request ${i}: finish ${finish}`);
      completed++;
    });
    const t0 = Date.now();
    await Promise.all(jobs);
    const elapsed = (Date.now() - t0) / 1000;
    assert.ok(disconnects > 40, `only ${disconnects} disconnects`);
    assert.equal(completed + disconnects, REQUESTS);

    // The server notices every vanished client (a failed write or heartbeat) and aborts it.
    let m;
    const deadline = Date.now() + 30000;
    for (;;) {
      m = await metrics(server.base);
      if (m.kvserve_num_requests_running === 0 && m.kvserve_num_requests_waiting === 0 && m.kvserve_http_requests_in_flight === 0) break;
      assert.ok(Date.now() < deadline, `still busy: ${JSON.stringify(m)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const preemptions = m['kvserve_preemptions_total{mode="recompute"}'] + m['kvserve_preemptions_total{mode="swap"}'];
    assert.ok(preemptions > 0, 'the 96-block pool forces preemption');
    assert.equal(m.kvserve_kv_blocks_used, 0);
    assert.equal(m.kvserve_kv_blocks_free, m.kvserve_kv_blocks_total);
    assert.ok(m['kvserve_requests_total{endpoint="/v1/completions",outcome="aborted"}'] >= 1);
    assert.ok(m.kvserve_engine_aborted_requests_total >= 1);
    const inv = await (await fetch(`${server.base}/debug/invariants`)).json();
    assert.equal(inv.ok, true);
    assert.equal(inv.kv.used_blocks, 0);
    assert.equal(inv.num_running + inv.num_waiting, 0);
    const after = await client.completions.create({ prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
    assert.equal(after.choices[0].finish_reason, 'length');
    console.log(`load: ${REQUESTS} streams in ${elapsed.toFixed(1)} s, ${disconnects} disconnects, ` +
      `preemptions recompute=${m['kvserve_preemptions_total{mode="recompute"}']} swap=${m['kvserve_preemptions_total{mode="swap"}']}, ` +
      `peak blocks ${m.kvserve_kv_blocks_peak_used}/${m.kvserve_kv_blocks_total}, aborted(engine)=${m.kvserve_engine_aborted_requests_total}`);
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});
