// End to end: closing the window leaves the limb in the tray. The real
// desktop binary under Xvfb (no WebDriver: its session would end with the
// window): the window is closed as a window manager would (WM_DELETE_WINDOW),
// WebKit's web process must end, the app must stay and answer a task with
// its real model, and a second launch must bring a new window back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { required } from './env.js';

const application = required('HEIWA_DESKTOP_BIN');
const python = required('HEIWA_TEST_PYTHON');
const heiwa = join(dirname(application), 'heiwa');
const closeWindow = join(dirname(fileURLToPath(import.meta.url)), 'close_window.py');

const scratch = mkdtempSync(join(tmpdir(), 'heiwa-tray-'));
chmodSync(scratch, 0o755);
const dataDir = join(scratch, 'data');
const home = join(scratch, 'home');
for (const dir of [dataDir, home]) {
  mkdirSync(dir);
  chmodSync(dir, 0o755);
}
const env = { ...process.env, HEIWA_DATA_DIR: dataDir, HOME: home };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(what, check, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await sleep(250);
  }
}

// The app's process tree, read from /proc: pid -> { ppid, comm, cmdline }.
function processes() {
  const table = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      table.set(Number(entry), { ppid, comm, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}
function descendants(pid) {
  const table = processes();
  const found = [];
  const walk = (parent) => {
    for (const [child, info] of table) {
      if (info.ppid === parent) {
        found.push({ pid: child, ...info });
        walk(child);
      }
    }
  };
  walk(pid);
  return found;
}
const webProcesses = (pid) => descendants(pid).filter((p) => p.comm.startsWith('WebKitWebProces'));

let app;
let log = '';
after(async () => {
  // Whatever a failed test left: nothing of this run outlives it.
  if (app && app.exitCode === null) app.kill('SIGKILL');
  for (const [pid, info] of processes()) {
    if (info.cmdline.some((arg) => arg.includes(scratch))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  rmSync(scratch, { recursive: true, force: true });
});

test('closing the window ends the WebView, the limb answers from the tray, a second launch reopens it, SIGTERM stops it all', async () => {
  app = spawn(application, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  app.stdout.on('data', (d) => (log += d));
  app.stderr.on('data', (d) => (log += d));
  await until('the first paint', () => log.includes('first paint'), 60);
  await until('a WebKit web process', () => webProcesses(app.pid).length > 0, 20);
  await until('the limb to join its hub', () => existsSync(join(dataDir, 'mesh', 'limb.token')), 180);

  const closed = spawnSync(python, [closeWindow, 'Heiwa'], { env, encoding: 'utf8' });
  assert.equal(closed.status, 0, `the window was found and asked to close: ${closed.stderr}`);
  await until('the web process to end', () => webProcesses(app.pid).length === 0, 20);
  await sleep(1000);
  assert.equal(app.exitCode, null, `the app keeps running in the tray; its log:\n${log}`);

  // A task, submitted to the app's own hub as its owner, is answered by its limb.
  const server = descendants(app.pid).find((p) => p.cmdline.includes('--listen-addr'));
  assert.ok(server, 'the app runs its hub server');
  const listen = server.cmdline[server.cmdline.indexOf('--listen-addr') + 1];
  const cli = (...args) =>
    spawnSync(heiwa, ['task', ...args, '--hub', `http://${listen}`, '--token-file', join(dataDir, 'mesh', 'owner.token')], {
      env,
      encoding: 'utf8'
    });
  const submitted = cli('submit', 'Say hello in one short sentence.');
  assert.equal(submitted.status, 0, submitted.stderr);
  const done = await until(
    'the task to be answered',
    () => {
      const listed = cli('list');
      return / done /.test(listed.stdout) ? listed.stdout : null;
    },
    240
  );
  assert.match(done, /Say hello/);
  const shown = JSON.parse(cli('show', '1', '--json').stdout);
  assert.ok(shown.result && JSON.stringify(shown.result).length > 40, `a result came back: ${JSON.stringify(shown)}`);
  assert.equal(webProcesses(app.pid).length, 0, 'answering did not bring a WebView back');

  // A second launch is the single instance's cue to open the window again.
  const second = spawnSync(application, [], { env, encoding: 'utf8', timeout: 30000 });
  assert.equal(second.status, 0, `the second launch hands over and leaves: ${second.stderr}`);
  await until('the reopened window to paint', () => log.includes('window painted'), 30);
  assert.ok(webProcesses(app.pid).length > 0, 'a new WebView runs');

  // SIGTERM (a logout) quits like the tray's Quit: the hub server and PostgreSQL stop with the app.
  // (PostgreSQL detaches from the app, as pg_ctl starts it: found by its data directory.)
  const started = () => [...processes().values()].filter((p) => p.cmdline.some((arg) => arg.includes(dataDir)));
  const names = started().map((p) => p.comm);
  assert.ok(names.some((n) => n.startsWith('spacetimedb')) && names.includes('postgres'), `the app runs its hub server and PostgreSQL: ${names}`);
  app.kill('SIGTERM');
  await until('the app to exit', () => app.exitCode !== null, 60);
  await until('everything it started to stop', () => started().length === 0, 30);
});

test('killed with SIGKILL, the app leaves nothing running (its hub server and PostgreSQL stop by themselves) and the next launch starts cleanly', async () => {
  // What the app started, found by its data directory (PostgreSQL and the hub server detach from it).
  const started = () => [...processes().values()].filter((p) => p.cmdline.some((arg) => arg.includes(dataDir)));
  for (const round of ['killed', 'relaunched after the kill']) {
    log = '';
    app = spawn(application, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    app.stdout.on('data', (d) => (log += d));
    app.stderr.on('data', (d) => (log += d));
    await until(`${round}: its hub server and PostgreSQL`, () => {
      const names = started().map((p) => p.comm);
      return names.some((n) => n.startsWith('spacetimedb')) && names.includes('postgres');
    }, 180);
    await until(`${round}: the limb to join its hub`, () => log.includes('first paint') && existsSync(join(dataDir, 'mesh', 'limb.token')), 60);
    if (round === 'killed') {
      app.kill('SIGKILL');
      await until('the app to die', () => app.exitCode !== null || app.signalCode !== null, 10);
      const killedAt = Date.now();
      await until('everything it started to stop by itself', () => started().length === 0, 30);
      console.log(`SIGKILL: the hub server and PostgreSQL gone ${Date.now() - killedAt} ms after the app`);
    } else {
      app.kill('SIGTERM');
      await until('the app to exit', () => app.exitCode !== null, 60);
      await until('everything it started to stop', () => started().length === 0, 30);
    }
  }
});
