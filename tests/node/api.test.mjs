// The official `openai` client against `kvserve serve` (stories260K): completions, chat,
// streaming, n > 1, logprobs, stop strings, errors, and greedy text equal to the engine's.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, generateJson, metrics, header } from './helpers.mjs';

const PROMPT = 'Once upon a time';

describe('kvserve serve with the openai client', () => {
  let server;
  let client;
  before(async () => {
    server = await startServer();
    client = server.client();
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0, `server exit code; stderr: ${server.stderr()}`);
  });

  it('greedy completion equals `kvserve generate --json`', async () => {
    const want = generateJson(PROMPT, 40);
    const r = await client.completions.create({ model: 'stories', prompt: PROMPT, max_tokens: 40, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, 'stories');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].text, want.text);
    assert.equal(r.usage.prompt_tokens, want.prompt_tokens.length);
    assert.equal(r.usage.completion_tokens, want.tokens.length);
    assert.equal(r.usage.total_tokens, want.prompt_tokens.length + want.tokens.length);
    assert.equal(r.choices[0].finish_reason, want.tokens.length === 40 ? 'length' : 'stop');
  });

  it('streamed greedy completion concatenates to the same text, ends with usage and [DONE]', async () => {
    const want = generateJson(PROMPT, 40);
    const stream = await client.completions.create({
      prompt: PROMPT, max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let finish = null;
    let usage = null;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      if (c.usage) { usage = c.usage; assert.equal(c.choices.length, 0); continue; }
      text += c.choices[0].text;
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
    assert.ok(chunks > 5, `only ${chunks} chunks`);
    assert.equal(text, want.text);
    assert.ok(finish === 'length' || finish === 'stop');
    assert.deepEqual(usage, {
      prompt_tokens: want.prompt_tokens.length, completion_tokens: want.tokens.length,
      total_tokens: want.prompt_tokens.length + want.tokens.length, prompt_tokens_details: usage.prompt_tokens_details,
    });
  });

  it('SSE wire format: data: lines and a final data: [DONE]', async () => {
    const res = await fetch(`${server.base}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: PROMPT, max_tokens: 5, temperature: 0, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const body = await res.text();
    const events = body.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]');
    for (const e of events.slice(0, -1)) JSON.parse(e.slice(6));
    assert.ok(body.endsWith('data: [DONE]\n\n'));
  });

  it('stop strings end the text before the stop string', async () => {
    const full = generateJson(PROMPT, 40).text;
    const stop = full.slice(15, 20);
    assert.ok(stop.trim().length > 0, `bad stop '${stop}' from '${full}'`);
    const cut = full.indexOf(stop);
    const r = await client.completions.create({ prompt: PROMPT, max_tokens: 40, temperature: 0, stop: [stop, 'zzzz'] });
    assert.equal(r.choices[0].text, full.slice(0, cut));
    assert.equal(r.choices[0].finish_reason, 'stop');
    const s = await client.completions.create({ prompt: PROMPT, max_tokens: 40, temperature: 0, stop, stream: true });
    let text = '';
    let finish = null;
    for await (const c of s) { text += c.choices[0].text; finish = c.choices[0].finish_reason ?? finish; }
    assert.equal(text, full.slice(0, cut));
    assert.equal(finish, 'stop');
  });

  it('n > 1: n choices, usage counts every generated token, seeds reproduce', async () => {
    const req = { prompt: PROMPT, max_tokens: 12, temperature: 1.0, n: 3, seed: 7, logprobs: 0 };
    const r = await client.completions.create(req);
    assert.equal(r.choices.length, 3);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    const tokens = r.choices.reduce((s, c) => s + c.logprobs.tokens.length, 0);
    assert.equal(r.usage.completion_tokens, tokens);
    const r2 = await client.completions.create(req);
    assert.deepEqual(r2.choices.map((c) => c.text).sort(), r.choices.map((c) => c.text).sort());
    // Streaming n = 2: chunks for both indices.
    const s = await client.completions.create({ ...req, n: 2, stream: true, logprobs: undefined });
    const texts = ['', ''];
    const finished = [false, false];
    for await (const c of s) {
      texts[c.choices[0].index] += c.choices[0].text;
      if (c.choices[0].finish_reason) finished[c.choices[0].index] = true;
    }
    assert.deepEqual(finished, [true, true]);
    assert.ok(texts[0].length > 0 && texts[1].length > 0);
  });

  it('best_of returns n of best_of sequences', async () => {
    const r = await client.completions.create({ prompt: PROMPT, max_tokens: 8, temperature: 1, n: 2, best_of: 4, seed: 3 });
    assert.equal(r.choices.length, 2);
    assert.ok(r.usage.completion_tokens >= 8 * 2, `${r.usage.completion_tokens}`);
  });

  it('completion logprobs: greedy token is the top-1, offsets add up', async () => {
    const r = await client.completions.create({ prompt: PROMPT, max_tokens: 10, temperature: 0, logprobs: 3 });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.length, 10);
    assert.equal(lp.token_logprobs.length, 10);
    assert.equal(lp.tokens.join(''), r.choices[0].text);
    for (let i = 0; i < 10; i++) {
      const top = Object.entries(lp.top_logprobs[i]);
      assert.ok(top.length >= 1 && top.length <= 3);
      const best = Math.max(...top.map(([, v]) => v));
      assert.ok(Math.abs(best - lp.token_logprobs[i]) < 1e-5, `token ${i}: ${lp.token_logprobs[i]} vs ${best}`);
      assert.ok(lp.token_logprobs[i] <= 0);
      if (i > 0) assert.equal(lp.text_offset[i], lp.text_offset[i - 1] + lp.tokens[i - 1].length);
    }
  });

  it('echo prepends the prompt; token-id and multi-prompt forms', async () => {
    const r = await client.completions.create({ prompt: PROMPT, max_tokens: 5, temperature: 0, echo: true });
    assert.ok(r.choices[0].text.startsWith(PROMPT));
    const tok = await (await fetch(`${server.base}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt: PROMPT }) })).json();
    const byIds = await client.completions.create({ prompt: tok.tokens, max_tokens: 5, temperature: 0 });
    assert.equal(byIds.choices[0].text, r.choices[0].text.slice(PROMPT.length));
    const multi = await client.completions.create({ prompt: [PROMPT, 'The dog'], max_tokens: 4, temperature: 0 });
    assert.deepEqual(multi.choices.map((c) => c.index), [0, 1]);
    assert.equal(multi.choices[0].text, byIds.choices[0].text.slice(0, multi.choices[0].text.length));
  });

  it('chat: fallback template, non-streamed and streamed agree, logprobs', async () => {
    const messages = [{ role: 'system', content: 'Tell a story.' }, { role: 'user', content: 'Once upon a time' }];
    const r = await client.chat.completions.create({ model: 'stories', messages, max_tokens: 16, temperature: 0, logprobs: true, top_logprobs: 2 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal(r.choices[0].logprobs.content.length, r.usage.completion_tokens);
    for (const t of r.choices[0].logprobs.content) assert.ok(t.top_logprobs.length <= 2 && t.top_logprobs.length >= 1);
    // The prompt is the documented fallback transcript.
    const tok = await (await fetch(`${server.base}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt: 'System: Tell a story.\nUser: Once upon a time\nAssistant:' }) })).json();
    assert.equal(r.usage.prompt_tokens, tok.count);
    const s = await client.chat.completions.create({ messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role = null;
    let usage = null;
    let finish = null;
    for await (const c of s) {
      if (c.usage) { usage = c.usage; continue; }
      assert.equal(c.object, 'chat.completion.chunk');
      role = c.choices[0].delta.role ?? role;
      text += c.choices[0].delta.content ?? '';
      finish = c.choices[0].finish_reason ?? finish;
    }
    assert.equal(role, 'assistant');
    assert.equal(text, r.choices[0].message.content);
    assert.equal(finish, r.choices[0].finish_reason);
    assert.equal(usage.completion_tokens, r.usage.completion_tokens);
  });

  it('errors: status codes and messages name the field and range', async () => {
    const expectError = async (promise, status, re) => {
      await assert.rejects(promise, (e) => {
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, status, e.message);
        assert.match(e.message, re);
        return true;
      });
    };
    await expectError(client.completions.create({ prompt: PROMPT, top_p: 1.5 }), 400, /top_p must be in \(0, 1\], got 1\.5/);
    await expectError(client.completions.create({ prompt: PROMPT, temperature: -1 }), 400, /'temperature' must be in \[0, 2\]/);
    await expectError(client.completions.create({ prompt: PROMPT, n: 0 }), 400, /'n' must be in \[1, 128\]/);
    await expectError(client.completions.create({ prompt: PROMPT, max_tokens: 'ten' }), 400, /'max_tokens' must be an integer, got string/);
    await expectError(client.completions.create({ prompt: PROMPT, logprobs: 50 }), 400, /'logprobs' must be in \[0, 20\]/);
    await expectError(client.completions.create({ model: 'gpt-4', prompt: PROMPT }), 404, /'gpt-4' does not exist/);
    await expectError(client.completions.create({ prompt: 'word '.repeat(3000) }), 400, /maximum context length is 2048 tokens.*\d+ tokens/);
    await expectError(client.chat.completions.create({ messages: [] }), 400, /'messages' must hold at least one message/);
    await expectError(client.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } }),
      400, /response_format.*not supported/);
    const err = await client.completions.create({ prompt: PROMPT, top_k: -5 }).catch((e) => e);
    assert.equal(err.status, 400);
    assert.equal(err.param, 'top_k');
    assert.equal(err.type, 'invalid_request_error');
    // Malformed JSON and unknown routes, without the client.
    const bad = await fetch(`${server.base}/v1/completions`, { method: 'POST', body: '{"prompt": ' });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /not valid JSON/);
    const missing = await fetch(`${server.base}/v1/nothing`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.type, 'not_found_error');
  });

  it('models, tokenize/detokenize, health, metrics', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['stories']);
    const m = await client.models.retrieve('stories');
    assert.equal(m.id, 'stories');
    await assert.rejects(client.models.retrieve('nope'), (e) => e.status === 404);
    const tok = await (await fetch(`${server.base}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt: PROMPT }) })).json();
    assert.equal(tok.count, tok.tokens.length);
    assert.equal(tok.max_model_len, 2048);
    const want = generateJson(PROMPT, 1);
    assert.deepEqual(tok.tokens, want.prompt_tokens);
    const detok = await (await fetch(`${server.base}/detokenize`, { method: 'POST', body: JSON.stringify({ tokens: tok.tokens }) })).json();
    assert.equal(detok.prompt, PROMPT);
    assert.equal((await fetch(`${server.base}/health`)).status, 200);
    const mt = await metrics(server.base);
    assert.ok(mt['kvserve_requests_total{endpoint="/v1/completions",outcome="success"}'] >= 5);
    assert.ok(mt['kvserve_requests_total{endpoint="/v1/completions",outcome="invalid"}'] >= 4);
    assert.ok(mt['kvserve_requests_total{endpoint="/v1/completions",outcome="not_found"}'] >= 1);
    assert.ok(mt['kvserve_generation_tokens_total'] > 100);
    assert.ok(mt['kvserve_time_to_first_token_seconds_count'] >= 5);
    assert.ok(mt['kvserve_inter_token_latency_seconds_count'] > 50);
    assert.ok(mt['kvserve_kv_blocks_total'] > 0);
    assert.ok(mt['kvserve_kv_cow_copies_total'] >= 0);
    assert.ok(mt['kvserve_prefix_cache_hit_rate'] > 0, 'repeated prompts hit the prefix cache');
    assert.equal(mt['kvserve_kv_blocks_used'], 0);
  });
});

describe('api key', () => {
  it('401 without or with a wrong key; health and metrics stay open', async () => {
    const server = await startServer(['--api-key', 'sekret']);
    try {
      await assert.rejects(server.client({ apiKey: 'wrong' }).completions.create({ prompt: 'hi', max_tokens: 2 }),
        (e) => e.status === 401 && /API key/.test(e.message));
      const noKey = await fetch(`${server.base}/v1/models`);
      assert.equal(noKey.status, 401);
      const ok = await server.client({ apiKey: 'sekret' }).completions.create({ prompt: 'hi', max_tokens: 2 });
      assert.equal(ok.choices.length, 1);
      assert.equal((await fetch(`${server.base}/health`)).status, 200);
      assert.equal((await fetch(`${server.base}/metrics`)).status, 200);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});

describe('overload and shutdown', () => {
  it('a full waiting queue answers 429 with Retry-After', async () => {
    const server = await startServer(['--max-num-seqs', '1', '--max-waiting-requests', '1', '--retry-after', '3']);
    try {
      const client = server.client();
      const results = await Promise.allSettled(Array.from({ length: 8 }, () =>
        client.completions.create({ prompt: 'Once upon a time', max_tokens: 64, temperature: 0 })));
      const rejected = results.filter((r) => r.status === 'rejected');
      const ok = results.filter((r) => r.status === 'fulfilled');
      assert.ok(ok.length >= 1, 'some requests are served');
      assert.ok(rejected.length >= 1, 'some requests are refused');
      for (const r of rejected) {
        assert.equal(r.reason.status, 429, r.reason.message);
        assert.equal(header(r.reason, 'retry-after'), '3');
        assert.match(r.reason.message, /waiting/i);
      }
      const mt = await metrics(server.base);
      assert.equal(mt['kvserve_requests_total{endpoint="/v1/completions",outcome="rejected"}'], rejected.length);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('SIGTERM: in-flight stream ends, new requests refused, exit 0 within the deadline', async () => {
    const server = await startServer(['--shutdown-timeout', '1']);
    const client = server.client();
    const stream = await client.completions.create({ prompt: 'Once upon a time', max_tokens: 2000, temperature: 0, ignore_eos: true, stream: true });
    let finish = null;
    let chunks = 0;
    const consumed = (async () => {
      for await (const c of stream) { chunks++; finish = c.choices[0].finish_reason ?? finish; }
    })();
    while (chunks < 3) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    server.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    const during = await fetch(`${server.base}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'x', max_tokens: 2 }) })
      .then((r) => r.status).catch(() => 'refused');
    assert.ok(during === 503 || during === 'refused', `during shutdown: ${during}`);
    await consumed;
    assert.ok(finish === 'abort' || finish === 'length', `finish ${finish}`);
    const { code } = await server.exited;
    assert.equal(code, 0, server.stderr());
    assert.ok(Date.now() - t0 < 10000, 'exited within the deadline');
  });
});
