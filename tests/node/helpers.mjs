// Starts `kvserve serve` on a free 127.0.0.1 port and talks to it.
// KVSERVE_BIN / KVSERVE_MODEL override the defaults (build/bin/kvserve, ../shared stories260K).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
export const BIN = process.env.KVSERVE_BIN ?? path.join(root, 'build', 'bin', 'kvserve');
export const MODEL = process.env.KVSERVE_MODEL ?? path.resolve(root, '..', 'shared', 'models', 'stories260K', 'stories260K.gguf');

// Missing fixtures fail the tests (never skip).
export function requireFixtures() {
  if (!existsSync(BIN)) throw new Error(`kvserve binary not found at ${BIN} (build it, or set KVSERVE_BIN)`);
  if (!existsSync(MODEL)) throw new Error(`model not found at ${MODEL} (set KVSERVE_MODEL)`);
}

export async function startServer(extraArgs = []) {
  requireFixtures();
  const args = ['serve', '--model', MODEL, '--host', '127.0.0.1', '--port', '0', '--served-model-name', 'stories',
    '--kv-cache-memory', '32M', ...extraArgs];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s; stderr: ${stderr}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${stderr}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    proc,
    exited,
    stderr: () => stderr,
    client: (opts = {}) => new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000, ...opts }),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

// `kvserve generate --json`: the engine's own greedy output for a prompt.
export function generateJson(prompt, maxTokens) {
  requireFixtures();
  const out = execFileSync(BIN, ['generate', '--model', MODEL, '--prompt', prompt, '--max-tokens', String(maxTokens),
    '--temperature', '0', '--json', '--kv-cache-memory', '8M'], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
}

// Prometheus text -> {"name{labels}": value}.
export async function metrics(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return m;
}

export function header(err, name) {
  const h = err.headers ?? {};
  return typeof h.get === 'function' ? h.get(name) : h[name];
}
