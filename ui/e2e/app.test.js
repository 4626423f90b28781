// End to end: the real desktop binary in a real WebKitGTK WebView, driven over
// W3C WebDriver through tauri-driver (run under Xvfb by scripts/test).
// Plain fetch against the WebDriver protocol keeps this free of a test framework.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, required, waitFor } from './env.js';
import { webdriverClient } from './webdriver.js';

const application = required('HEIWA_DESKTOP_BIN');
const tauriDriver = required('TAURI_DRIVER');
const artifacts = process.env.HEIWA_ARTIFACTS ?? join(tmpdir(), 'heiwa-e2e');
// Everything this run writes (the app's data, its home, update fixtures, documents)
// lives under one scratch dir, removed afterwards: the machine's disk is shared by runs.
// World-readable: as root, the app's PostgreSQL runs as nobody and must reach its directory.
const scratch = mkdtempSync(join(tmpdir(), 'heiwa-e2e-'));
chmodSync(scratch, 0o755);
const scratchDir = (name) => {
  const dir = join(scratch, name);
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  return dir;
};
const dataDir = scratchDir('data');
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The app's home: its start-at-login entry lands in ~/.config/autostart, kept out of the real home.
const home = scratchDir('home');

let driver;
const { at, webdriver, find, text, click, clear, type, textOrEmpty, screenshot } = webdriverClient(artifacts);

// Update fixtures: a key pair made for this run (the debug build trusts
// HEIWA_UPDATE_PUBKEY), an artifact signed for 0.2.0, and a local server.
const tauriCli = join(repo, 'ui', 'node_modules', '.bin', 'tauri');
const updates = scratchDir('updates');
let updateServer;
let updateBase;

function signer(...args) {
  const run = spawnSync(tauriCli, ['signer', ...args], { cwd: updates, encoding: 'utf8', env: { ...process.env, TAURI_SIGNING_PRIVATE_KEY_PASSWORD: '' } });
  if (run.status !== 0) throw new Error(`tauri signer ${args.join(' ')}: ${run.stderr}`);
}

function makeUpdateFixtures() {
  signer('generate', '--ci', '-p', '', '-w', join(updates, 'test.key'));
  signer('generate', '--ci', '-p', '', '-w', join(updates, 'stranger.key'));
  const artifact = join(updates, 'heiwa-0.2.0.AppImage');
  writeFileSync(artifact, Buffer.from('Heiwa 0.2.0 '.repeat(4096)));
  signer('sign', '-f', join(updates, 'test.key'), '--app-version', '0.2.0', artifact);
  const good = readFileSync(`${artifact}.sig`, 'utf8');
  signer('sign', '-f', join(updates, 'test.key'), '--app-version', '0.1.5', artifact);
  const older = readFileSync(`${artifact}.sig`, 'utf8');
  signer('sign', '-f', join(updates, 'stranger.key'), '--app-version', '0.2.0', artifact);
  const stranger = readFileSync(`${artifact}.sig`, 'utf8');
  const body = readFileSync(artifact);
  const tampered = Buffer.from(body);
  tampered[100] ^= 1;
  // Each scenario: what latest.json announces and what the download returns.
  return {
    signed: { signature: good, bytes: body },
    tampered: { signature: good, bytes: tampered },
    unsigned: { signature: '', bytes: body },
    'other-key': { signature: stranger, bytes: body },
    'replayed-older-signature': { signature: older, bytes: body }
  };
}

async function startUpdateServer(scenarios) {
  updateServer = createHttpServer((request, response) => {
    const [, scenario, file] = request.url.split('/');
    const fixture = scenarios[scenario];
    if (!fixture) return response.writeHead(404).end();
    if (file === 'latest.json') {
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end(
        JSON.stringify({
          version: '0.2.0',
          notes: 'a test release',
          pub_date: '2026-11-24T00:00:00Z',
          platforms: { 'linux-x86_64': { signature: fixture.signature, url: `${updateBase}/${scenario}/heiwa.AppImage` } }
        })
      );
    }
    response.writeHead(200, { 'content-type': 'application/octet-stream' });
    response.end(fixture.bytes);
  });
  await new Promise((resolve) => updateServer.listen(0, '127.0.0.1', resolve));
  updateBase = `http://127.0.0.1:${updateServer.address().port}`;
}

before(async () => {
  await startUpdateServer(makeUpdateFixtures());
  const pubkey = readFileSync(join(updates, 'test.key.pub'), 'utf8').trim();
  const port = await freePort();
  const nativePort = await freePort();
  at.base = `http://127.0.0.1:${port}`;
  driver = spawn(tauriDriver, ['--port', String(port), '--native-port', String(nativePort)], {
    env: { ...process.env, HEIWA_DATA_DIR: dataDir, HEIWA_UPDATE_PUBKEY: pubkey, HOME: home },
    stdio: ['ignore', 'inherit', 'inherit']
  });
  await waitFor('tauri-driver', async () => (await fetch(`${at.base}/status`)).ok);
  const created = await webdriver('POST', '/session', {
    capabilities: { alwaysMatch: { 'tauri:options': { application } } }
  });
  at.session = created.sessionId;
});

after(async () => {
  if (at.session) await webdriver('DELETE', `/session/${at.session}`).catch(() => {});
  // SIGTERM, not SIGKILL: a killed tauri-driver leaves WebKitWebDriver holding stdout.
  driver?.kill('SIGTERM');
  updateServer?.close();
  // If the app was killed before its exit handler ran, its hub server is orphaned.
  spawnSync('pkill', ['-f', dataDir]);
  rmSync(scratch, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

test('the window shows the limb state returned by the Rust side', async () => {
  await waitFor('the tabs', () => find('#tab-limb'));
  await click('#tab-limb');
  const version = await waitFor('the limb version to render', () => text('#limb-version'));
  assert.match(version, /^v\d+\.\d+\.\d+/);
  assert.equal(await text('#data-dir'), dataDir, 'the data dir comes from the backend, which read HEIWA_DATA_DIR');

  const parts = await text('#parts');
  for (const name of ['hub server', 'memory (PostgreSQL)', 'chat model', 'embedding model', 'sandbox image']) {
    assert.ok(parts.includes(name), `part "${name}" listed in:\n${parts}`);
  }
  assert.ok(!/missing|not configured/.test(parts), `scripts/test configures every part:\n${parts}`);
  assert.equal((parts.match(/found/g) ?? []).length, 4, `four parts are files that exist:\n${parts}`);
  await waitFor('the limb to connect', async () => (await text('#limb-connection')).startsWith('connected'), 120000);
  assert.match(await text('#limb-model'), /not loaded until a task needs it/, 'an idle limb holds no model in memory');
  assert.match(await text('#donation-state'), /^giving/);
  assert.equal(await text('#limb-tool'), 'ready (sandboxed)');
  assert.equal(await text('#limb-generation'), 'idle (one task at a time)', 'no answer yet, so no speed');
  await screenshot('limb-status');
});

test('a folder added in the Memory view is ingested with progress, and a search cites it', async () => {
  await click('#tab-memory');
  await type('#folder-path', 'samples/docs');
  await click('#add-folder');
  assert.match(await waitFor('the refusal', () => textOrEmpty('#memory-error')), /not a full path/, 'a relative path gets a clear error');

  const folder = scratchDir('docs');
  cpSync(join(repo, 'samples', 'docs'), folder, { recursive: true });
  writeFileSync(join(folder, 'broken.pdf'), '%PDF-1.7 this is not really a PDF');
  writeFileSync(join(folder, 'style.css'), 'body { color: black; }');
  // Someone else's code: left out by default, named with its reason, taken when asked.
  mkdirSync(join(folder, 'node_modules', 'left-pad'), { recursive: true });
  writeFileSync(join(folder, 'node_modules', 'left-pad', 'index.js'), 'module.exports = (s, n) => s.padStart(n);\n');
  await clear('#folder-path');
  await type('#folder-path', folder);
  await click('#add-folder');
  const result = await waitFor('the ingest to finish', () => textOrEmpty('#ingest-result'), 180000);
  // The stylesheet is counted as a type memory does not take, not as a failure.
  assert.match(result, /^Added 4, unchanged 0, failed 1, removed 0, skipped 1 of types memory does not take, left out 1 unread \(named below\) from /, result);
  assert.match(await text('#ingest-progress'), /^6 \/ 6 files/, 'progress counts every file');
  const failed = await text('#ingest-failures');
  assert.match(failed, /broken\.pdf/, `the bad file is named with its reason: ${failed}`);
  await click('#ingest-left-out summary');
  const left = await text('#ingest-left-out');
  assert.match(left, /node_modules: a dependency or build folder/, `the dependency folder is named once, with why: ${left}`);
  await screenshot('memory-left-out');
  await click('#take-generated');
  await click('#add-folder');
  const again = await waitFor('the second ingest to finish', async () => {
    const line = await textOrEmpty('#ingest-result');
    return line.startsWith('Added 1,') && line;
  }, 180000);
  assert.ok(!again.includes('left out'), `with "dependencies" ticked nothing is left out: ${again}`);
  await click('#take-generated');
  assert.match(await waitFor('the documents list', async () => (await text('#documents')).includes('volunteer-computing.md') && text('#documents')), /sourdough\.txt/);

  await type('#search-query', "What happens to a work unit when a volunteer's computer disappears?");
  await click('#search-button');
  const hits = await waitFor('search results', () => textOrEmpty('#search-results'), 60000);
  const first = hits.split('\n')[0];
  assert.match(first, /^volunteer-computing\.md §\d+ · bytes \d+–\d+ · similarity 0\.\d\d$/, `the top hit cites its source: ${hits}`);
  await screenshot('memory-search');
});

test('a task submitted in the window is answered by the agent of the limb and the result appears live', async () => {
  await click('#tab-tasks');
  await waitFor('the local hub', async () => (await text('#hub-status')).startsWith('Connected'), 120000);
  // A fixed question (the data dir is fresh, so it is task #1): greedy decoding makes the answer stable.
  const payload = 'What is 6*7?';
  await webdriver('POST', `/session/${at.session}/element/${await find('#task-payload')}/value`, { text: payload });
  await webdriver('POST', `/session/${at.session}/element/${await find('#submit-task')}/click`, {});
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
  // The Limb view counts it, and the hub acknowledged it: nothing waits in the outbox.
  await click('#tab-limb');
  await waitFor('the limb to count the task', async () => (await text('#limb-done')).startsWith('1 done'), 30000);
  assert.equal(await text('#limb-waiting'), 'none: the hub has every result');
  // Its signed result earned credit, shown as what this machine gave.
  await waitFor('the credit', async () => /^\d+\.\d{3} credits for 1 verified result, \d+\.\d{3} this week$/.test(await text('#limb-credit')));
  // How that answer went, as chat apps show it.
  assert.match(
    await text('#limb-generation'),
    /^idle \(one task at a time\) · last answer: \d+ tokens( at \d+\.\d tokens\/s)?, the first after \d+\.\d s$/
  );
  // The work counted on this machine: the task, the model's tokens and time (no GPU here), this week and all time.
  const given = (await text('#limb-given')).match(/^this week: (.+) · all time: (.+)$/);
  assert.ok(given, `the work done here: ${await text('#limb-given')}`);
  assert.match(given[1], /^1 task, [\d,]+ tokens, \d+ (s|min) of model time \(on the CPU\)$/);
  assert.equal(given[2], given[1], 'a first run: all of it is this week');
  await screenshot('limb-answered');
  await click('#tab-tasks');
});

test('pausing stops new claims; resuming lets the limb answer (the governor in the real app)', async () => {
  await click('#tab-tasks');
  await click('#pause-toggle');
  await waitFor('the paused badge', async () => (await text('#donation-badge')) === 'Not giving — paused by you');
  assert.equal(await text('#pause-toggle'), 'Resume giving');
  const payload = 'What is 2+3?';
  await type('#task-payload', payload);
  await click('#submit-task');
  const row = () => text('#tasks').then((all) => all.split('\n').find((line) => line.includes(payload)) ?? '');
  await waitFor('the task to be listed', row);
  await new Promise((r) => setTimeout(r, 8000)); // more than a claim round trip and a governor tick
  assert.match(await row(), /^pending/, 'no claim while paused');
  await screenshot('paused');

  await click('#pause-toggle');
  await waitFor('giving again', async () => (await text('#donation-badge')).startsWith('Giving'));
  const answered = await waitFor('the answer after resuming', async () => ((await row()).startsWith('done') ? row() : ''), 180000);
  assert.match(answered, /\b5\b/, answered);
});

test('settings: a bad donation policy is refused with the reason; start at login writes and removes the entry', async () => {
  await click('#tab-settings');
  await waitFor('the donation form', () => find('#max-concurrent'));
  await clear('#max-concurrent');
  await type('#max-concurrent', '0');
  await click('#save-donation');
  assert.match(await waitFor('the refusal', () => textOrEmpty('#donation-error')), /at most 16 tasks at once \(and at least 1\)/);
  await clear('#max-concurrent');
  await type('#max-concurrent', '2');
  await click('#save-donation');
  assert.match(await waitFor('the saved note', () => textOrEmpty('#donation-note')), /^Saved: giving/);
  const saved = JSON.parse(readFileSync(join(dataDir, 'settings.json'), 'utf8'));
  assert.equal(saved.donation.max_concurrent, 2, 'saved to the settings file');

  // The GPU: as many layers as fit under a cap, a temperature limit; a limit no machine runs under is refused.
  await clear('#gpu-cap');
  await type('#gpu-cap', '1500');
  await clear('#max-gpu-celsius');
  await type('#max-gpu-celsius', '20');
  await click('#save-donation');
  assert.match(await waitFor('the refusal', () => textOrEmpty('#donation-error')), /temperature limit is between 40 and 110/);
  await clear('#max-gpu-celsius');
  await type('#max-gpu-celsius', '80');
  await click('#save-donation');
  await waitFor('the saved note', () => textOrEmpty('#donation-note'));
  const gpu = JSON.parse(readFileSync(join(dataDir, 'settings.json'), 'utf8')).donation;
  assert.deepEqual([gpu.gpu_layers, gpu.gpu_memory_cap_mib, gpu.max_gpu_celsius], [null, 1500, 80]);
  await screenshot('settings-gpu', '#gpu-mode');

  // A hub address that would send the limb's token in clear text is refused before any connection.
  await type('#hub-url', 'ws://hub.example.org:3000');
  await click('#save-hub');
  assert.match(await waitFor('the hub refusal', () => textOrEmpty('#hub-error')), /unencrypted: give the hub's address as wss:/);
  assert.match(await text('#hub-mode'), /^Running its own hub on this machine/, 'nothing changed');

  const entry = join(home, '.config', 'autostart', 'Heiwa.desktop');
  await click('#autostart');
  await waitFor('the autostart entry', () => existsSync(entry));
  assert.match(readFileSync(entry, 'utf8'), /heiwa-desktop/);
  await click('#autostart');
  await waitFor('the entry to go', () => !existsSync(entry));
});

test('settings: a dashboard code signs a browser into the tenant at the app’s hub; revoking it refuses it', async () => {
  await click('#tab-settings');
  await waitFor('the dashboard form', () => find('#dashboard-invite'));
  await type('#dashboard-label', 'kitchen tablet');
  await click('#dashboard-invite');
  const code = await waitFor('the code', () => textOrEmpty('#dashboard-code-value'));
  assert.match(code, /^[0-9a-f]{32}$/);
  const hub = (await text('#dashboard-hub')).replace(/^ws/, 'http');
  assert.match(await text('#dashboard-link'), new RegExp(`#hub=.*&db=heiwa&code=${code}$`));
  // A browser, as the hub sees one: an identity of its own joins with the code.
  const identity = await (await fetch(`${hub}/v1/identity`, { method: 'POST' })).json();
  const join = (token) =>
    fetch(`${hub}/v1/database/heiwa/call/join_dashboard`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify([code])
    });
  assert.equal((await join(identity.token)).status, 200, 'the code signs the browser in');
  await click('#dashboard-refresh');
  await waitFor('the browser listed', async () => (await textOrEmpty('#dashboard-browsers')).includes('kitchen tablet'));
  assert.match(await text('#dashboard-browsers'), /read only/);
  await screenshot('settings-dashboard', '#dashboard-browsers');
  await click('#dashboard-browsers .revoke');
  await waitFor('the browser gone', async () => !(await textOrEmpty('#dashboard-browsers')).includes('kitchen tablet'));
  const refused = await join(identity.token);
  assert.equal(refused.status, 403);
  assert.match(await refused.text(), /revoked/);
});

test('updates: a signed update is verified; tampered, unsigned, foreign-key and replayed ones are rejected', async () => {
  await click('#tab-settings');
  /** Check `scenario` and return [result, error] as the window shows them. */
  async function check(scenario) {
    await clear('#update-endpoint');
    await type('#update-endpoint', `${updateBase}/${scenario}/latest.json`);
    await click('#check-update');
    return waitFor(`the ${scenario} update check`, async () => {
      const [result, error] = [await textOrEmpty('#update-result'), await textOrEmpty('#update-error')];
      return result.startsWith('Checking') || (!result && !error) ? '' : [result, error];
    }, 60000);
  }
  const [verified] = await check('signed');
  assert.match(verified, /^Heiwa 0\.2\.0 is ready: downloaded and its signature verified — a test release$/);
  await find('#install-update');
  await screenshot('update-verified', '#update-result');
  for (const scenario of ['tampered', 'unsigned', 'other-key', 'replayed-older-signature']) {
    const [result, error] = await check(scenario);
    assert.equal(result, '', `${scenario}: nothing offered`);
    assert.match(error, /signature/, `${scenario}: ${error}`);
  }
  await screenshot('update-rejected', '#update-error');
});

test('a second launch hands over to the running app and exits (single instance)', async () => {
  assert.ok(process.env.DBUS_SESSION_BUS_ADDRESS, 'scripts/test runs this under a D-Bus session, where single instance lives');
  const second = spawn(application, [], { env: { ...process.env, HEIWA_DATA_DIR: dataDir, HOME: home }, stdio: 'ignore' });
  const code = await Promise.race([
    new Promise((resolve) => second.once('exit', resolve)),
    new Promise((resolve) => setTimeout(() => resolve('still running'), 15000))
  ]);
  if (code === 'still running') second.kill('SIGKILL');
  assert.equal(code, 0, 'the second instance exits at once instead of starting a second limb');
  assert.match(await text('#donation-badge'), /giving/i, 'the first window still runs');
});
