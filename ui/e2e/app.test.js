// End to end: the real desktop binary in a real WebKitGTK WebView, driven over
// W3C WebDriver through tauri-driver (run under Xvfb by scripts/test).
// Plain fetch against the WebDriver protocol keeps this free of a test framework.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const required = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through scripts/test`);
  return value;
};
const application = required('HEIWA_DESKTOP_BIN');
const tauriDriver = required('TAURI_DRIVER');
const artifacts = process.env.HEIWA_ARTIFACTS ?? join(tmpdir(), 'heiwa-e2e');
const dataDir = mkdtempSync(join(tmpdir(), 'heiwa-e2e-data-'));
chmodSync(dataDir, 0o755); // as root, the app's PostgreSQL runs as nobody and must reach its directory

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

let driver;
let base;
let session;

async function webdriver(method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json.value)}`);
  return json.value;
}

async function waitFor(what, probe, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}: ${lastError ?? 'no value'}`);
}

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
const find = async (css) => (await webdriver('POST', `/session/${session}/element`, { using: 'css selector', value: css }))[ELEMENT];
const text = async (css) => webdriver('GET', `/session/${session}/element/${await find(css)}/text`);

async function screenshot(name) {
  mkdirSync(artifacts, { recursive: true });
  const png = await webdriver('GET', `/session/${session}/screenshot`);
  writeFileSync(join(artifacts, `${name}.png`), Buffer.from(png, 'base64'));
}

before(async () => {
  const port = await freePort();
  const nativePort = await freePort();
  base = `http://127.0.0.1:${port}`;
  driver = spawn(tauriDriver, ['--port', String(port), '--native-port', String(nativePort)], {
    env: { ...process.env, HEIWA_DATA_DIR: dataDir },
    stdio: ['ignore', 'inherit', 'inherit']
  });
  await waitFor('tauri-driver', async () => (await fetch(`${base}/status`)).ok);
  const created = await webdriver('POST', '/session', {
    capabilities: { alwaysMatch: { 'tauri:options': { application } } }
  });
  session = created.sessionId;
});

after(async () => {
  if (session) await webdriver('DELETE', `/session/${session}`).catch(() => {});
  // SIGTERM, not SIGKILL: a killed tauri-driver leaves WebKitWebDriver holding stdout.
  driver?.kill('SIGTERM');
  // If the app was killed before its exit handler ran, its hub server is orphaned.
  spawnSync('pkill', ['-f', dataDir]);
});

test('the window shows the limb state returned by the Rust side', async () => {
  const version = await waitFor('the limb version to render', () => text('#limb-version'));
  assert.match(version, /^v\d+\.\d+\.\d+/);
  assert.equal(await text('#data-dir'), dataDir, 'the data dir comes from the backend, which read HEIWA_DATA_DIR');

  const parts = await text('#parts');
  for (const name of ['hub server', 'memory (PostgreSQL)', 'chat model', 'embedding model', 'sandbox image']) {
    assert.ok(parts.includes(name), `part "${name}" listed in:\n${parts}`);
  }
  assert.ok(!/missing|not configured/.test(parts), `scripts/test configures every part:\n${parts}`);
  assert.equal((parts.match(/found/g) ?? []).length, 4, `four parts are files that exist:\n${parts}`);
  await screenshot('limb-status');
});

test('a task submitted in the window is answered by the agent of the limb and the result appears live', async () => {
  await waitFor('the local hub', async () => (await text('#hub-status')).startsWith('Connected'), 120000);
  // A fixed question (the data dir is fresh, so it is task #1): greedy decoding makes the answer stable.
  const payload = 'What is 6*7?';
  await webdriver('POST', `/session/${session}/element/${await find('#task-payload')}/value`, { text: payload });
  await webdriver('POST', `/session/${session}/element/${await find('#submit-task')}/click`, {});
  // WebKit renders each task row on one line: "done  #1 <payload>  <answer>  <tool calls>  (limb N)".
  const row = await waitFor(
    'the answered task',
    async () => (await text('#tasks')).split('\n').find((line) => line.includes(payload) && line.startsWith('done')),
    180000
  );
  assert.match(row, /\(limb \d+\)$/, 'which limb answered');
  assert.match(row, /1 run_python call/, 'the model computed it with the sandboxed tool');
  assert.match(row, /\b42\b/, 'the answer, from the summary the limb sent back');
  assert.ok(!row.includes('{'), `the summary is shown as text, not JSON: ${row}`);
  await screenshot('task-answered');
});
