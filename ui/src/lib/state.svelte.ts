// The window's view of the limb: read from the Rust side on every
// `limb-changed` event (the hub pushes task rows; the governor and the limb
// report changes), and every few seconds for the CPU figure. The types are
// the Rust ones, generated into contract.ts.
import { commands, events } from './generated/commands';
import type { CommandError, LimbView, TasksView } from './generated/contract';

export const app = $state<{ tasks: TasksView; limb: LimbView | null; error: string }>({
  tasks: { status: 'starting', error: null, hub: null, tasks: [] },
  limb: null,
  error: ''
});

export const views = ['tasks', 'memory', 'models', 'limb', 'settings'] as const;
/** Which view the window shows: the tabs set it, and so does the first-run guide. */
export const nav = $state<{ view: (typeof views)[number] }>({ view: 'tasks' });

export async function refresh() {
  try {
    app.tasks = await commands.tasks();
    app.limb = await commands.limbStatus();
    app.error = '';
  } catch (e) {
    app.error = message(e);
  }
}

events.limbChanged(refresh);
refresh();
setInterval(refresh, 3000);

function isCommandError(error: unknown): error is CommandError {
  return typeof error === 'object' && error !== null && 'message' in error && 'hint' in error;
}

/** Every error as the window shows it: what went wrong, then what to do. */
export function message(error: unknown): string {
  if (isCommandError(error)) return error.hint ? `${error.message}; ${error.hint}` : error.message;
  return String(error).replace(/^Error: /, '');
}
