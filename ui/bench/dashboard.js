// Dashboard benchmark (run by scripts/bench-dashboard): a real hub, an echo
// limb, the built dashboard in Debian's Chromium (headless).
//  - update: 200 tasks submitted from the page one after another and answered
//    by the limb; for each, the time from the result's commit on the hub (its
//    reducer timestamp) to the next frame after the page's row changed. The
//    baseline, measured in the same run, is the page's own reducer round trip
//    (a submit until the hub's answer reaches the page): the push of someone
//    else's change against a direct call over the same WebSocket.
//  - first rows: page load to the first frame showing live rows, 10,000 tasks
//    in the tenant; render: from the subscription applied to that frame.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { freePort, required, waitFor } from '../e2e/env.js';

const heiwa = required('HEIWA_BIN');
const chromiumPath = required('HEIWA_CHROMIUM');
const TASKS = 200;
const ROWS = 10_000;
const scratch = mkdtempSync(join(tmpdir(), 'heiwa-bench-face-'));
chmodSync(scratch, 0o755);
const children = [];

function dir(name) {
  const path = join(scratch, name);
  mkdirSync(path, { recursive: true });
  return path;
}

async function start(args, env, ready) {
  const child = spawn(heiwa, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  await waitFor(`heiwa ${args[0]}`, () => {
    if (child.exitCode !== null) throw new Error(output);
    return ready.test(output);
  });
  return child;
}

function run(env, ...args) {
  const done = spawnSync(heiwa, args, { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (done.status !== 0) throw new Error(`heiwa ${args.join(' ')}: ${done.stderr}`);
  return done.stdout.trim();
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const round = (x) => Math.round(x * 10) / 10;

try {
  const hubPort = await freePort();
  const hub = `http://127.0.0.1:${hubPort}`;
  const hubDir = dir('hub');
  await start(['hub', 'up', '--listen', `127.0.0.1:${hubPort}`], { HEIWA_DATA_DIR: hubDir }, /hub up/);
  const owner = { HEIWA_DATA_DIR: dir('owner'), HEIWA_HUB: hub };
  run(owner, 'tenant', 'create', 'bench');
  // 10,000 open tasks, submitted as fast as the page sends them.
  run({ HEIWA_HUB: hub, HEIWA_TOKEN_FILE: join(hubDir, 'hub', 'owner.token') }, 'hub', 'limits',
    '--max-open-tasks', String(ROWS + TASKS), '--submits-per-sec', '100000', '--submit-burst', '100000');
  const dashboardPort = await freePort();
  const dashboardUrl = `http://127.0.0.1:${dashboardPort}`;
  await start(['dashboard', '--listen', `127.0.0.1:${dashboardPort}`, '--hub', hub], {}, /dashboard on/);
  const limb = await start(
    ['limb', 'run', '--invite', run(owner, 'tenant', 'invite'), '--executor', 'echo', '--name', 'echo'],
    { HEIWA_DATA_DIR: dir('limb'), HEIWA_HUB: hub },
    /^ready/m
  );
  const { link } = JSON.parse(run(owner, 'tenant', 'dashboard-invite', '--submit', '--json', '--dashboard', dashboardUrl));

  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(link);
  await page.locator('#connection', { hasText: 'Live' }).waitFor();

  const { rtts, updates } = await page.evaluate(async (n) => {
    const face = globalThis.heiwaFace;
    const rtts = [];
    for (let i = 0; i < n; i++) {
      const before = face.updateLatencies.length;
      const sent = performance.now();
      const refused = await face.submit(`bench task ${i}`);
      if (refused) throw new Error(refused);
      rtts.push(performance.now() - sent);
      const deadline = Date.now() + 10_000;
      while (face.updateLatencies.length === before) {
        if (Date.now() > deadline) throw new Error(`task ${i} was not answered in the page`);
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    return { rtts, updates: face.updateLatencies.slice(-n) };
  }, TASKS);

  // 10,000 rows: the limb stops, the page queues the rest, then a fresh load.
  limb.kill('SIGTERM');
  await new Promise((r) => limb.once('exit', r));
  await page.evaluate(async (n) => {
    const face = globalThis.heiwaFace;
    for (let i = 0; i < n; i += 500) {
      const batch = [];
      for (let j = i; j < Math.min(n, i + 500); j++) batch.push(face.submit(`queued ${j}`));
      const refused = (await Promise.all(batch)).find((r) => r);
      if (refused) throw new Error(refused);
    }
  }, ROWS - TASKS);
  const loads = [];
  for (let i = 0; i < 3; i++) {
    await page.reload();
    await page.locator('#connection', { hasText: 'Live' }).waitFor();
    const timing = await waitFor('the first frame', () =>
      page.evaluate(() => {
        const face = globalThis.heiwaFace;
        return face.firstFrameMs && { rows: face.tasks.size, applied: face.firstRowsMs, frame: face.firstFrameMs };
      })
    );
    if (timing.rows !== ROWS) throw new Error(`the page shows ${timing.rows} tasks, not ${ROWS}`);
    loads.push(timing);
  }
  await page.locator('[data-task]').first().waitFor();
  const rendered = await page.locator('[data-task]').count();
  await browser.close();

  const load = loads.sort((a, b) => a.frame - b.frame)[1];
  const result = {
    first_rows_ms: Math.round(load.frame),
    update_p50_ms: round(percentile(updates, 50)),
    update_p99_ms: round(percentile(updates, 99)),
    rtt_p50_ms: round(percentile(rtts, 50)),
    update_ratio: round(percentile(updates, 50) / percentile(rtts, 50)),
    render_10k_ms: Math.round(load.frame - load.applied),
    rows_in_dom: rendered
  };
  console.log(`update: ${TASKS} tasks, commit → next frame p50 ${result.update_p50_ms} ms, p99 ${result.update_p99_ms} ms; the page's own reducer round trip p50 ${result.rtt_p50_ms} ms`);
  console.log(`10,000 rows: first live rows on screen ${result.first_rows_ms} ms after load (median of 3), of which rendering ${result.render_10k_ms} ms; ${rendered} rows in the DOM`);
  console.log(`RESULT dashboard ${Object.entries(result).map(([k, v]) => `${k}=${v}`).join(' ')}`);
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  rmSync(scratch, { recursive: true, force: true });
}
