// Generated from src-tauri/src/commands by src-tauri/build.rs: do not edit.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type { BrowserView, Citation, DashboardInvite, Decision, DocumentInfo, DonationPolicy, IngestEvent, LimbInfo, LimbView, ModelInfo, ModelsView, PullProgress, SettingsView, TasksView, UpdateCheck, WalkOptions } from './contract';

/** What the window may ask of the app, each as its Rust command takes and returns it. */
export const commands = {
  /** `commands::dashboard::dashboard_invite` */
  dashboardInvite: (submits: boolean, label: string) => invoke<DashboardInvite>('dashboard_invite', { submits, label }),
  /** `commands::dashboard::dashboard_browsers` */
  dashboardBrowsers: () => invoke<BrowserView[]>('dashboard_browsers'),
  /** `commands::dashboard::revoke_browser` */
  revokeBrowser: (identity: string) => invoke<void>('revoke_browser', { identity }),
  /** `commands::donation::save_donation` */
  saveDonation: (policy: DonationPolicy) => invoke<Decision>('save_donation', { policy }),
  /** `commands::donation::set_paused` */
  setPaused: (paused: boolean) => invoke<Decision>('set_paused', { paused }),
  /** `commands::limb::first_paint` */
  firstPaint: () => invoke<void>('first_paint'),
  /** `commands::limb::limb_info` */
  limbInfo: () => invoke<LimbInfo>('limb_info'),
  /** `commands::limb::limb_status` */
  limbStatus: () => invoke<LimbView>('limb_status'),
  /** `commands::limb::tool_check` */
  toolCheck: () => invoke<string | null>('tool_check'),
  /** `commands::memory::pick_folder` */
  pickFolder: () => invoke<string | null>('pick_folder'),
  /** `commands::memory::ingest_folder` */
  ingestFolder: (path: string, options: WalkOptions) => invoke<void>('ingest_folder', { path, options }),
  /** `commands::memory::documents` */
  documents: () => invoke<DocumentInfo[]>('documents'),
  /** `commands::memory::remove_document` */
  removeDocument: (path: string) => invoke<number>('remove_document', { path }),
  /** `commands::memory::search_memory` */
  searchMemory: (query: string) => invoke<Citation[]>('search_memory', { query }),
  /** `commands::models::models` */
  models: () => invoke<ModelsView>('models'),
  /** `commands::models::pin_model` */
  pinModel: (id: string, pinned: boolean) => invoke<void>('pin_model', { id, pinned }),
  /** `commands::models::pull_model` */
  pullModel: (source: string, sha256: string | null) => invoke<ModelInfo>('pull_model', { source, sha256 }),
  /** `commands::models::cancel_pull` */
  cancelPull: () => invoke<void>('cancel_pull'),
  /** `commands::models::save_model_mirror` */
  saveModelMirror: (mirror: string) => invoke<void>('save_model_mirror', { mirror }),
  /** `commands::models::import_model` */
  importModel: () => invoke<ModelInfo | null>('import_model'),
  /** `commands::models::use_model` */
  useModel: (id: string) => invoke<void>('use_model', { id }),
  /** `commands::settings::settings` */
  settings: () => invoke<SettingsView>('settings'),
  /** `commands::settings::save_hub` */
  saveHub: (url: string, database: string, invite: string) => invoke<void>('save_hub', { url, database, invite }),
  /** `commands::settings::save_update_settings` */
  saveUpdateSettings: (endpoint: string, channel: string) => invoke<void>('save_update_settings', { endpoint, channel }),
  /** `commands::settings::set_autostart` */
  setAutostart: (enabled: boolean) => invoke<boolean>('set_autostart', { enabled }),
  /** `commands::tasks::tasks` */
  tasks: () => invoke<TasksView>('tasks'),
  /** `commands::tasks::submit_task` */
  submitTask: (payload: string, replicas: number | null) => invoke<void>('submit_task', { payload, replicas }),
  /** `commands::tasks::cancel_task` */
  cancelTask: (taskId: number) => invoke<void>('cancel_task', { taskId }),
  /** `commands::updates::check_update` */
  checkUpdate: () => invoke<UpdateCheck>('check_update'),
  /** `commands::updates::install_update` */
  installUpdate: () => invoke<void>('install_update'),
};

function on<T>(event: string) {
  return (heard: (payload: T) => void): Promise<UnlistenFn> => listen<T>(event, (e) => heard(e.payload));
}

/** What the app tells the window, each with its payload's type. */
export const events = {
  ingest: on<IngestEvent>('ingest'),
  pullProgress: on<PullProgress>('model-pull'),
  limbChanged: on<null>('limb-changed'),
};
