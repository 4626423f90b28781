// End to end: the web dashboard (the Face) in Debian's Chromium, headless,
// driven by playwright-core, against a real hub and a real limb (the agent:
// llama.cpp, PostgreSQL + pgvector with the sample documents, the sandbox).
// The page talks to the hub itself; `heiwa dashboard` only serves its files.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, required, waitFor } from './env.js';

const heiwa = required('HEIWA_BIN');
const chromiumPath = required('HEIWA_CHROMIUM');
required('HEIWA_FACE_DIR');
const artifacts = join(process.env.HEIWA_ARTIFACTS ?? join(tmpdir(), 'heiwa-e2e'), 'dashboard');
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// World-readable: as root, the limb's PostgreSQL runs as nobody and must reach its directory.
const scratch = mkdtempSync(join(tmpdir(), 'heiwa-face-'));
chmodSync(scratch, 0o755);
const dir = (name) => {
  const path = join(scratch, name);
  mkdirSync(path, { recursive: true, mode: 0o755 });
  chmodSync(path, 0o755);
  return path;
};

let hubPort;
let hubUrl;
let hub;
let dashboard;
let dashboardUrl;
let limb = null;
let browser;
const children = new Set();

/** Start a long-running `heiwa` command; resolves once its output matches `ready`. */
async function start(args, env, ready, timeoutMs = 60000) {
  const child = spawn(heiwa, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const deadline = Date.now() + timeoutMs;
  while (!ready.test(output)) {
    if (child.exitCode !== null) throw new Error(`heiwa ${args.join(' ')} exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`heiwa ${args[0]} did not start in time: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return child;
}

async function stop(child) {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await gone;
}

/** Run `heiwa` as a tenant's owner (each owner its own data directory, so its own identity). */
function owner(name, ...args) {
  const run = spawnSync(heiwa, args, { env: { ...process.env, HEIWA_DATA_DIR: dir(`owner-${name}`), HEIWA_HUB: hubUrl }, encoding: 'utf8' });
  assert.equal(run.status, 0, `heiwa ${args.join(' ')}: ${run.stderr}`);
  return run.stdout.trim();
}

const invite = (name, ...flags) =>
  JSON.parse(owner(name, 'tenant', 'dashboard-invite', '--json', '--dashboard', dashboardUrl, ...flags));

const startHub = () =>
  start(['hub', 'up', '--listen', `127.0.0.1:${hubPort}`], { HEIWA_DATA_DIR: dir('hub') }, /hub up/).then((child) => (hub = child));

async function startLimb() {
  const code = owner('alpha', 'tenant', 'invite');
  limb = await start(
    ['limb', 'run', '--invite', code, '--name', 'workstation'],
    { HEIWA_DATA_DIR: dir('limb'), HEIWA_HUB: hubUrl },
    /^ready/m,
    180000
  );
}

const pageErrors = [];

async function page(link, width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 800 } });
  const opened = await context.newPage();
  // An uncaught error in the page fails the test it happened in (see afterEach).
  opened.on('pageerror', (error) => pageErrors.push(error.message));
  await opened.goto(link);
  return opened;
}

const live = (p) => p.locator('#connection', { hasText: 'Live' }).waitFor({ timeout: 20000 });
const row = (p, id) => p.locator(`[data-task="${id}"]`);
const stateOf = (p, id) => row(p, id).getAttribute('data-state');
const shot = (p, name) => p.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  hubPort = await freePort();
  hubUrl = `http://127.0.0.1:${hubPort}`;
  await startHub();
  owner('alpha', 'tenant', 'create', 'alpha');
  owner('beta', 'tenant', 'create', 'beta');
  const dashboardPort = await freePort();
  dashboardUrl = `http://127.0.0.1:${dashboardPort}`;
  dashboard = await start(['dashboard', '--listen', `127.0.0.1:${dashboardPort}`, '--hub', hubUrl], {}, /dashboard on/);
  // The limb answers from the sample documents: ingest them into its own memory first.
  const ingest = spawnSync(heiwa, ['ingest', join(repo, 'samples', 'docs')], {
    env: { ...process.env, HEIWA_DATA_DIR: dir('limb') },
    encoding: 'utf8'
  });
  assert.equal(ingest.status, 0, ingest.stderr);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
});

afterEach(() => {
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], `the page threw: ${errors.join('; ')}`);
});

after(async () => {
  await browser?.close();
  for (const child of [...children]) await stop(child);
  rmSync(scratch, { recursive: true, force: true });
});

test('a wrong, malformed or used code is a clear message in the page', async () => {
  const p = await page(`${dashboardUrl}/`);
  await p.locator('#sign-in').waitFor();
  // The page holds a hub token: it runs only its own scripts.
  const csp = await p.locator('meta[http-equiv="content-security-policy"]').getAttribute('content');
  assert.match(csp, /script-src 'self' 'sha256-/);
  const injected = await p.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.injected = true';
    document.body.append(script);
    return window.injected ?? false;
  });
  assert.equal(injected, false, 'an injected inline script does not run');
  await p.fill('#code', 'not a code');
  await p.click('#sign-in button');
  assert.match(await p.locator('#face-problem').textContent(), /not a dashboard code/);
  await p.fill('#code', '0123456789abcdef0123456789abcdef');
  await p.click('#sign-in button');
  await p.locator('#face-problem', { hasText: 'unknown or already used' }).waitFor();
  // A code works once: a second browser with the same link is refused.
  const { link } = invite('alpha', '--label', 'first');
  const first = await page(link);
  await live(first);
  const second = await page(link);
  await second.locator('#face-problem', { hasText: 'unknown or already used' }).waitFor();
  await shot(second, 'sign-in-refused');
  await Promise.all([p, first, second].map((x) => x.context().close()));
});

test('signed in, a task goes pending → claimed → done with its answer and citations, live; limbs come and go', async () => {
  const { link } = invite('alpha', '--submit', '--label', 'laptop');
  const p = await page(link);
  await live(p);
  assert.equal(await p.locator('#role').textContent(), 'read + submit');
  // The code leaves the address bar once used.
  assert.equal(new URL(p.url()).hash, '');
  await p.click('#tab-limbs');
  await p.locator('#no-limbs').waitFor();
  await p.click('#tab-tasks');

  await p.fill('#task-payload', "What happens to a work unit when a volunteer's computer disappears?");
  await p.click('#submit-task');
  const task = await waitFor('the task in the page', () => p.locator('[data-task]').first().getAttribute('data-task'));
  assert.equal(await stateOf(p, task), 'pending', 'no limb yet: the task waits');

  const seen = new Set(['pending']);
  await startLimb();
  await p.click('#tab-limbs');
  const card = p.locator('li.limb', { hasText: 'workstation' });
  await card.locator('.presence.on').waitFor({ timeout: 30000 });
  await shot(p, 'limbs-desktop');
  await p.click('#tab-tasks');
  await waitFor(
    'the task to be done',
    async () => {
      seen.add(await stateOf(p, task));
      return seen.has('done');
    },
    300000
  );
  assert.ok(seen.has('claimed'), `the page showed the task claimed on its way: saw ${[...seen]}`);
  await row(p, task).click();
  const detail = p.locator('#task-detail');
  assert.ok((await detail.locator('.answer').textContent()).trim().length > 0, 'an answer');
  assert.match(await detail.locator('.sources').textContent(), /sources: \[1\] \S+/);
  assert.match(await detail.locator('.limb').textContent(), /limb \d+/);
  await shot(p, 'tasks-desktop');

  // The limb stops: the page shows it offline, without a reload.
  await stop(limb);
  await p.click('#tab-limbs');
  await card.locator('.presence.off').waitFor({ timeout: 30000 });
  assert.match(await card.textContent(), /1 tasks done/);
  await p.context().close();
});

test('cancel works; an empty or oversized task is refused with a clear message', async () => {
  const { link } = invite('alpha', '--submit', '--label', 'canceller');
  const p = await page(link);
  await live(p);
  await p.click('#submit-task');
  assert.match(await p.locator('#task-problem').textContent(), /empty/);
  await p.fill('#task-payload', 'x'.repeat(17 * 1024));
  await p.click('#submit-task');
  assert.match(await p.locator('#task-problem').textContent(), /17408 bytes; the hub takes at most 16384/);
  // The hub checks it too, whatever a page does.
  const refused = await p.evaluate(() => globalThis.heiwaFace.submit('y'.repeat(20000)));
  assert.match(refused, /task payload is 20000 bytes; the limit is 16384/);

  await p.fill('#task-payload', 'cancel me');
  await p.click('#submit-task');
  const task = await waitFor('the new task', () => p.locator('[data-task]', { hasText: 'cancel me' }).getAttribute('data-task'));
  await row(p, task).click();
  await p.click('#cancel-task');
  await waitFor('cancelled', async () => (await stateOf(p, task)) === 'cancelled');
  await p.context().close();
});

test('read-only, another tenant, revoked: each is refused by the hub', async () => {
  const readOnly = await page(invite('alpha', '--label', 'wall screen').link);
  await live(readOnly);
  await readOnly.locator('#read-only').waitFor();
  assert.equal(await readOnly.locator('#submit-task').count(), 0);
  const alphaTasks = await readOnly.locator('[data-task]').count();
  assert.ok(alphaTasks >= 2, 'the read-only browser sees the tenant');
  assert.match(await readOnly.evaluate(() => globalThis.heiwaFace.submit('sneaky')), /may not submit/);

  const other = await page(invite('beta', '--submit', '--label', 'beta laptop').link);
  await live(other);
  assert.equal(await other.locator('[data-task]').count(), 0, 'another tenant sees none of alpha’s tasks');
  assert.equal(await other.evaluate(() => globalThis.heiwaFace.limbs.size), 0, 'nor its limbs');
  const alphaTask = await readOnly.locator('[data-task]').first().getAttribute('data-task');
  const refused = await other.evaluate((id) => globalThis.heiwaFace.cancel(BigInt(id)), alphaTask);
  assert.match(refused, new RegExp(`no task ${alphaTask} in your tenant`));

  // The owner revokes the read-only browser: its page empties and says so at once…
  const listed = owner('alpha', 'tenant', 'browsers');
  const identity = listed.split('\n').find((line) => line.includes('wall screen')).split(/\s+/)[0];
  owner('alpha', 'tenant', 'revoke-browser', identity.slice(0, 12));
  await readOnly.locator('#connection', { hasText: 'Refused' }).waitFor({ timeout: 20000 });
  assert.equal(await readOnly.locator('[data-task]').count(), 0);
  // …and the hub refuses it at its next connect.
  await readOnly.reload();
  await readOnly.locator('#face-problem', { hasText: 'revoked' }).waitFor({ timeout: 20000 });
  assert.equal(await readOnly.evaluate(() => globalThis.heiwaFace.status), 'refused');
  await shot(readOnly, 'revoked');
  await Promise.all([readOnly, other].map((x) => x.context().close()));
});

test('a task two donors must agree on: copies go to limbs of two invites, the page shows the verdict and records', async () => {
  owner('gamma', 'tenant', 'create', 'gamma');
  // Two donors (one invite each), echo limbs: the same payload, the same answer.
  const donors = [];
  for (const name of ['donor-one', 'donor-two']) {
    const code = owner('gamma', 'tenant', 'invite');
    const env = { HEIWA_DATA_DIR: dir(`gamma-${name}`), HEIWA_HUB: hubUrl };
    donors.push(await start(['limb', 'run', '--invite', code, '--name', name, '--executor', 'echo'], env, /^ready/m));
  }
  const p = await page(invite('gamma', '--submit', '--label', 'gamma laptop').link);
  await live(p);
  await p.fill('#task-payload', 'checked by two donors');
  await p.selectOption('#task-replicas', '2');
  await p.click('#submit-task');
  await p.waitForFunction(
    () => [...globalThis.heiwaFace.replicaSets.values()].some((set) => set.verdict.tag === 'Agreed'),
    null,
    { timeout: 30000 }
  );
  const ids = await p.locator('[data-task]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-task')));
  assert.equal(ids.length, 2, `the task and its copy: ${ids}`);
  await row(p, ids[ids.length - 1]).click();
  const verdict = await p.locator('#task-replicas-verdict').textContent();
  assert.match(verdict, /Agreed by limbs (\d+), (?!\1)(\d+) \(2 of 2 copies\)/, verdict);
  await shot(p, 'replicas-agreed');
  await p.click('#tab-limbs');
  for (const name of ['donor-one', 'donor-two']) {
    const record = p.locator('li.limb', { hasText: name }).locator('.record');
    assert.match(await record.textContent(), /1 agreed, 0 disputed/);
  }
  await p.context().close();
  for (const donor of donors) await stop(donor);
});

test('the hub restarts while the page is open: the page says so and recovers what it showed', async () => {
  const p = await page(invite('alpha', '--submit', '--label', 'restart watcher').link);
  await live(p);
  const before = await p.locator('[data-task]').count();
  await stop(hub);
  await p.locator('#lost').waitFor({ timeout: 20000 });
  assert.equal(await p.locator('[data-task]').count(), before, 'what was shown stays while the hub is away');
  await shot(p, 'hub-lost');
  await startHub();
  await live(p);
  await waitFor('the rows back', async () => (await p.locator('[data-task]').count()) === before);
  assert.equal(await p.locator('#lost').count(), 0);
  await p.context().close();
});

test("a task pinned to a model says why it waits, as `heiwa task show` does, live; the catalogue shows each limb's copy", async () => {
  const p = await page(invite('alpha', '--label', 'catalogue watcher').link);
  await live(p);
  owner('alpha', 'task', 'submit', '--model', 'coder-7b', 'pinned to a model nobody has');
  const pinned = p.locator('[data-task]', { hasText: 'pinned to a model nobody has' });
  const notListed = "waiting: no limb holds coder-7b (it is not in the tenant's catalogue, so no limb will fetch it: heiwa tenant model add)";
  await pinned.locator('.answer', { hasText: notListed }).waitFor({ timeout: 20000 });
  const id = await pinned.getAttribute('data-task');
  assert.ok(owner('alpha', 'task', 'show', id).includes(notListed), 'the page and the CLI say the same');
  // Listed (at an address where nothing answers): the tenant's limbs are asked for it; the one
  // online tries and fails; its copy's row reaches the page as it changes, without a reload.
  const code = owner('alpha', 'tenant', 'invite');
  const fetcher = await start(['limb', 'run', '--invite', code, '--name', 'fetcher', '--executor', 'echo'],
    { HEIWA_DATA_DIR: dir('fetcher'), HEIWA_HUB: hubUrl }, /^ready/m);
  owner('alpha', 'tenant', 'model', 'add', 'coder-7b', '--source', 'http://127.0.0.1:9/coder-7b.gguf',
    '--sha256', 'ab'.repeat(32), '--size', '4683073504', '--license', 'Apache-2.0');
  const failed = 'waiting: no limb holds coder-7b; every source failed on 1 limb';
  await pinned.locator('.answer', { hasText: failed }).waitFor({ timeout: 20000 });
  const shown = await pinned.locator('.answer').textContent();
  assert.match(shown, / limbs? offline \(to fetch it when back\)$/, 'the limbs of earlier tests are offline');
  assert.ok(owner('alpha', 'task', 'show', id).includes(`  ${shown.trim()}\n`), 'the page and the CLI say the same');
  await pinned.click();
  assert.ok((await p.locator('#task-detail').textContent()).includes(failed));
  await p.click('#tab-limbs');
  const entry = p.locator('#catalogue [data-model="coder-7b"]');
  await entry.waitFor();
  assert.match(await entry.textContent(), /coder-7b\.gguf · 4466 MiB · Apache-2\.0\s+— no limb holds it yet/);
  assert.match(await entry.locator('.copies').textContent(), /fetcher: failed — every source failed: .*127\.0\.0\.1:9/);
  assert.match(await entry.locator('.copies').textContent(), /workstation: wanted \(offline\)/);
  // Credit: the donors' table says what `heiwa tenant credit` sums from the same ledger.
  const byDonor = new Map();
  for (const line of JSON.parse(owner('alpha', 'tenant', 'credit', '--json')))
    byDonor.set(line.donor, (byDonor.get(line.donor) ?? 0) + line.all.milli);
  assert.ok([...byDonor.values()].some((milli) => milli > 0), 'the limbs of earlier tests earned credit');
  for (const [donor, milli] of byDonor)
    assert.equal(await p.locator(`#donors [data-donor="${donor}"] .paid`).textContent(), (milli / 1000).toFixed(3), donor);
  assert.match(await p.locator('#credit-per-day figcaption').textContent(), /^\d+\.\d credits paid in the last 14 days$/);
  await shot(p, 'catalogue-desktop');
  await p.context().close();
  await stop(fetcher);
});

test('every view at phone width', async () => {
  const p = await page(invite('alpha', '--submit', '--label', 'phone').link, 390);
  await live(p);
  await p.locator('[data-task]').first().click();
  await shot(p, 'tasks-phone');
  await p.click('#tab-limbs');
  await shot(p, 'limbs-phone');
  await p.click('#tab-access');
  await shot(p, 'access-phone');
  // Nothing wider than the screen: no sideways scrolling on a phone.
  assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= 390));
  await p.context().close();
  const wide = await page(invite('alpha', '--label', 'desk').link);
  await live(wide);
  await wide.click('#tab-access');
  await shot(wide, 'access-desktop');
  await wide.context().close();
});
