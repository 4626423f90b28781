// The desktop's first run from the package alone: the .deb installed on a
// clean Debian root (scripts/lib/install.sh), the app started inside it, and
// driven from outside through tauri-driver + WebKitWebDriver (the root shares
// the loopback network). From the guided start to a task answered citing a
// document: the model comes from the loopback mirror set in the Models view.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, required, waitFor } from '../e2e/env.js';
import { webdriverClient } from '../e2e/webdriver.js';

const application = required('HEIWA_CLEAN_APP');
const root = required('HEIWA_CLEAN_ROOT');
const mirror = required('HEIWA_MODEL_MIRROR');
const tauriDriver = required('TAURI_DRIVER');
const artifacts = required('HEIWA_ARTIFACTS');

let driver;
const { at, webdriver, find, text, click, clear, type, textOrEmpty, screenshot } = webdriverClient(artifacts);
const launched = Date.now();
let pullSeconds = 0;
// Where the first run's time goes: seconds since the launch at each step (the download's own time taken out).
const phases = {};
const mark = (name) => (phases[name] = Math.round((Date.now() - launched) / 100) / 10 - pullSeconds);

before(async () => {
  const port = await freePort();
  const nativePort = await freePort();
  at.base = `http://127.0.0.1:${port}`;
  driver = spawn(tauriDriver, ['--port', String(port), '--native-port', String(nativePort)], { stdio: ['ignore', 'inherit', 'inherit'] });
  await waitFor('tauri-driver', async () => (await fetch(`${at.base}/status`)).ok);
  const created = await webdriver('POST', '/session', { capabilities: { alwaysMatch: { 'tauri:options': { application } } } });
  at.session = created.sessionId;
});

after(async () => {
  if (at.session) await webdriver('DELETE', `/session/${at.session}`).catch(() => {});
  driver?.kill('SIGTERM');
});

test('a first run with nothing set up shows the guided start, at 1280 and 800 px', async () => {
  const guide = await waitFor('the guided start', () => textOrEmpty('#first-run'), 60000);
  mark('guide_shown_s');
  assert.match(guide, /Pick a model/);
  assert.match(guide, /A personal hub on this machine/);
  // No container engine in the clean root: the tool is off, and the guide says how to turn it on.
  const tool = await waitFor('the engine check', async () => ((await text('#tool-status')).includes('Looking') ? '' : text('#tool-status')));
  assert.match(tool, /Off: no container engine .*install Docker/, tool);
  for (const width of [1280, 800]) {
    await webdriver('POST', `/session/${at.session}/window/rect`, { width, height: 800 });
    await screenshot(`first-run-${width}`);
  }
});

test('a model is downloaded in the Models view from the mirror set there, and the limb starts', async () => {
  await click('#choose-model');
  await waitFor('the Models view', () => find('#catalogue'));
  await clear('#model-mirror');
  await type('#model-mirror', mirror);
  await click('#save-mirror');
  assert.equal(await waitFor('the mirror saved', () => textOrEmpty('#mirror-note')), `Models come from ${mirror}`);
  const pullStarted = Date.now();
  await click('#catalogue .download');
  await waitFor('the progress bar', () => find('#pull-progress'));
  await screenshot('model-downloading');
  const note = await waitFor('the download', async () => {
    const said = await textOrEmpty('#model-note');
    return said.startsWith('Downloaded') ? said : '';
  }, 300000);
  pullSeconds = Math.round((Date.now() - pullStarted) / 100) / 10;
  assert.match(note, /sha256 verified/);
  assert.match(await text('#models'), /qwen2\.5-coder-0\.5b-instruct-q4_k_m/);
  // The donor keeps it: a model the tenant's catalogue drops is not deleted if kept.
  await click('#models .pin');
  await waitFor('the model kept', async () => (await text('#models .pin')) === 'Kept ✓');
  assert.match(await text('#model-note'), /stays here whatever the tenant's catalogue says/);
  await click('#tab-tasks');
  await waitFor('the local hub', async () => (await textOrEmpty('#hub-status')).startsWith('Connected'), 180000);
  mark('limb_connected_s');
});

test('a document ingested through the window is cited in a task answer', async () => {
  mkdirSync(join(root, 'tmp/first-docs'), { recursive: true });
  writeFileSync(
    join(root, 'tmp/first-docs/lighthouse.md'),
    '# Hirta light\n\nThe keeper of the lighthouse on Hirta island is Oskar Brandvold. He lights the lamp at 18:40 every evening.\n'
  );
  await click('#tab-memory');
  await type('#folder-path', '/tmp/first-docs');
  await click('#add-folder');
  await waitFor('the ingest', () => textOrEmpty('#ingest-result'), 180000);
  mark('ingested_s');
  await click('#tab-tasks');
  const payload = 'Who keeps the lighthouse on Hirta island?';
  await type('#task-payload', payload);
  await click('#submit-task');
  const row = await waitFor(
    'the answered task',
    async () => (await text('#tasks')).split('\n').find((line) => line.includes(payload) && line.startsWith('done')),
    240000
  );
  assert.match(row, /Brandvold/, row);
  assert.match(row, /sources: .*lighthouse\.md/, row);
  mark('answered_s');
  await screenshot('first-answer');
  writeFileSync(
    join(artifacts, 'first-run.json'),
    JSON.stringify({ first_run_to_answer_s: phases.answered_s, pull_s: pullSeconds, ...phases })
  );
});
