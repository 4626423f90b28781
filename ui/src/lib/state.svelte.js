// The window's view of the limb: read from the Rust side on every
// `limb-changed` event (the hub pushes task rows; the governor and the limb
// report changes), and every few seconds for the CPU figure.
import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';

/**
 * @typedef {{give: boolean, reason: string, max_in_flight: number, threads: number, gpu_layers: number, release_running: boolean}} Decision
 * @typedef {{start: string, end: string}} Window
 * @typedef {{when: {mode: 'always'} | {mode: 'idle', minutes: number} | {mode: 'windows', windows: Window[]}, not_on_battery: boolean, cpu_threads: number, gpu_layers: number, max_concurrent: number, paused: boolean, gpu_paused: boolean, on_pause: 'finish' | 'release'}} Policy
 * @typedef {{id: number, state: string, payload: string, attempts: number, limb: number | null, summary: string | null, reason: string}} Task
 * @typedef {{limb_id: number | null, connected: boolean, problem: string | null, running: number[], completed: number, failed: number, released: number}} LimbStatus
 * @typedef {{limb: LimbStatus | null, policy: Policy, decision: Decision, model: {path: string, loaded: boolean} | null, tool_problem: string | null, cpu_percent: number | null, gpu_offload: boolean, ingesting: string | null}} LimbView
 */

export const app = $state({
  /** @type {{status: string, error: string | null, tasks: Task[]}} */
  tasks: { status: 'starting', error: null, tasks: [] },
  /** @type {LimbView | null} */
  limb: null,
  error: ''
});

export async function refresh() {
  try {
    app.tasks = /** @type {any} */ (await invoke('tasks'));
    app.limb = /** @type {any} */ (await invoke('limb_status'));
    app.error = '';
  } catch (e) {
    app.error = String(e);
  }
}

listen('limb-changed', refresh);
refresh();
setInterval(refresh, 3000);

/** @param {unknown} error */
export const message = (error) => String(error).replace(/^Error: /, '');
