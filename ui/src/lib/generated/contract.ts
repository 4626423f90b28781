// Generated from the Rust types by src-tauri/src/contract.rs: do not edit.
// HEIWA_BLESS=1 cargo test --workspace --lib -- contract writes it anew.

export type CommandError = { message: string, 
/**
 * The next step for the owner, when there is one.
 */
hint: string | null, };

export type TasksView = { status: LimbPhase, error: string | null, 
/**
 * The address of the hub this limb gives to when it is someone else's;
 * `None`: the hub this app runs itself.
 */
hub: string | null, tasks: Array<TaskView>, };

export type LimbPhase = "starting" | "ready" | "no_model" | "failed";

export type TaskView = { id: number, state: TaskState, payload: string, attempts: number, 
/**
 * The limb that answered, once there is a result.
 */
limb: number | null, 
/**
 * The result as the limb sent it.
 */
summary: string | null, 
/**
 * The result read as an agent's summary, when it is one.
 */
answer: Summary | null, reason: string, };

export type TaskState = "pending" | "claimed" | "done" | "failed" | "cancelled";

export type Summary = { answer: string, citations: Array<SummaryCitation>, tool_calls: number, steps: number, 
/**
 * Set when the answer was cut to fit the hub's size limit.
 */
truncated?: boolean, };

export type SummaryCitation = { 
/**
 * The number the answer cites it by: `[n]`.
 */
n: number, file: string, chunk: number, span: [number, number], page?: number, 
/**
 * The lines cited (first, last), for source code.
 */
lines?: [number, number], 
/**
 * Other places the same passage appears (copies collapsed into this one).
 */
also?: Array<SummaryPlace>, };

export type SummaryPlace = { file: string, chunk: number, page?: number, };

export type LimbView = { limb: LimbStatus | null, policy: DonationPolicy, decision: Decision, model: ModelState | null, 
/**
 * Why the run_python tool is unavailable (no container engine), if it is.
 */
tool_problem: string | null, 
/**
 * Percent of the whole machine this app used since the last look.
 */
cpu_percent: number | null, 
/**
 * The GPUs llama.cpp can offload to.
 */
gpus: Array<Device>, 
/**
 * Why models run on the CPU only, when they do.
 */
cpu_only: string | null, 
/**
 * Which CPU kernels llama.cpp runs: the build's level, and what this CPU has beyond it.
 */
cpu_kernels: string, ingesting: string | null, 
/**
 * What this machine's verified work earned (`None`: nothing yet, or no hub).
 */
credit: MachineCredit | null, 
/**
 * What this machine's limb did (counted here): tasks, tokens, the model's time.
 */
given: Given | null, };

export type ModelState = { path: string, 
/**
 * In memory now (loaded for a task, kept for its keep-alive).
 */
loaded: boolean, 
/**
 * Where its last load put the layers, and why.
 */
offload: OffloadChoice | null, 
/**
 * Answering a task now.
 */
generating: boolean, 
/**
 * Its slots: the tasks' agent turns it answers together, in use now.
 */
slots: Slots, 
/**
 * Tokens its slots generated per second, together, since the view last
 * looked (`None` at the first look).
 */
tokens_per_s: number | null, 
/**
 * How its last answer went.
 */
last_answer: AnswerPace | null, };

export type AnswerPace = { tokens: number, first_token_s: number, 
/**
 * `None` for an answer of one token.
 */
tokens_per_s: number | null, };

export type Slots = { 
/**
 * Tasks the loaded model answers at once (its batch's slots; 0 when not loaded).
 */
slots: number, 
/**
 * Agent turns in the batch now.
 */
in_use: number, 
/**
 * The most agent turns that shared its steps at once since it was loaded.
 */
most_in_use: number, 
/**
 * Prompt tokens a slot already held, not computed again (a shared system prompt).
 */
reused_tokens: bigint, 
/**
 * Tokens its slots generated since it was loaded.
 */
generated_tokens: bigint, };

export type LimbInfo = { version: string, data_dir: string, 
/**
 * Each part and whether it is configured, without starting anything.
 */
parts: Array<PartInfo>, 
/**
 * What this machine's limb did, as last saved (after each task).
 */
given: Given, };

export type PartInfo = { name: string, detail: string, state: PartState, };

export type PartState = "found" | "missing" | "configured" | "not_configured";

export type LimbStatus = { 
/**
 * Its id at the hub, once registered.
 */
limb_id: number | null, 
/**
 * Its identity at the hub (hex), once connected.
 */
identity: string | null, connected: boolean, 
/**
 * The last connection problem, while disconnected.
 */
problem: string | null, running: number[], completed: number, failed: number, released: number, 
/**
 * Results finished here that the hub has not acknowledged yet: kept on
 * disk and delivered when the link is back.
 */
waiting: number[], 
/**
 * The limb ended with this error (it does not come back by itself).
 */
stopped: string | null, 
/**
 * The tenant's owner (or its admin bot) paused this limb, and why: it
 * takes no new work until resumed from there.
 */
paused_by_tenant: string | null, 
/**
 * The tenant's catalogue models the hub asked this machine for, and how each copy goes.
 */
models: Array<ModelCopy>, };

export type MachineCredit = { 
/**
 * Milli-credits paid (earned and released).
 */
paid_milli: number, 
/**
 * Of them, in the last 7 days (known where this machine reads the ledger: its own hub).
 */
week_milli: number | null, escrow_milli: number, revoked_milli: number, 
/**
 * Results paid for.
 */
tasks: number, };

export type Given = { week: Work, all: Work, };

export type Work = { 
/**
 * Tasks answered (a result made; the hub decides whether it pays).
 */
tasks: number, 
/**
 * Tokens the model generated or scored for them.
 */
tokens: number, 
/**
 * Milliseconds the model spent on them.
 */
model_ms: number, 
/**
 * Of them, with layers on a GPU.
 */
gpu_ms: number, };

export type ModelCopy = { model_id: string, 
/**
 * wanted (not fetched yet: the reason says why), fetching, held, failed or no room.
 */
stage: string, have: number, size_bytes: number, 
/**
 * Why it failed or does not fit.
 */
reason: string, };

export type FetchedModel = { 
/**
 * Its file in the models directory.
 */
file: string, 
/**
 * The catalogue's id for it.
 */
model_id: string, 
/**
 * Seconds since the epoch when the catalogue dropped it (`None`: the tenant wants it still).
 */
dropped_at: number | null, };

export type RemoteHub = { 
/**
 * `wss://…` (or `ws://` to this machine).
 */
url: string, database: string, 
/**
 * The tenant owner's invite code; needed until this limb has joined.
 */
invite: string | null, };

export type DashboardInvite = { code: string, hub: string, database: string, 
/**
 * For the dashboard served by `heiwa dashboard` on this machine.
 */
link: string, valid_secs: number, };

export type BrowserView = { identity: string, label: string, submits: boolean, };

export type DonationPolicy = { when: When, not_on_battery: boolean, 
/**
 * CPU threads for inference; 0 means every core.
 */
cpu_threads: number, 
/**
 * Model layers offloaded to the GPU: `None` as many as fit (under
 * `gpu_memory_cap_mib`), a number exactly that many (0: CPU only).
 */
gpu_layers: number | null, 
/**
 * The most GPU memory the model may take, MiB; 0 means no cap but the
 * memory that is free.
 */
gpu_memory_cap_mib: number, 
/**
 * The GPUs given, each by its PCI id or its description as `heiwa gpu
 * list` shows them (not by index: the order may change at a reboot);
 * none: every GPU. A named GPU that is not here gives nothing.
 */
gpus: Array<string>, 
/**
 * Minutes a loaded model may sit idle before its memory (GPU memory
 * included) is given back; it loads again for the next task. 0: never.
 */
keep_alive_minutes: number, 
/**
 * Stop giving while a GPU is hotter than this (°C; 0: no limit).
 */
max_gpu_celsius: number, 
/**
 * Stop giving while the CPU is hotter than this (°C; 0: no limit).
 */
max_cpu_celsius: number, max_concurrent: number, 
/**
 * The most disk (MiB) the tenant's catalogue models fetched here may take
 * together; a model that does not fit is never fetched nor assigned here.
 * 0: no cap but the disk's. Read when the limb starts.
 */
models_disk_cap_mib: number, 
/**
 * The most MiB a second those downloads may take from the link; 0: no cap.
 */
models_download_mib_per_s: number, 
/**
 * Daily windows (local time) those downloads may run in; none: any time.
 * A download under way when its window ends stops, and goes on in the next.
 */
models_download_hours: Array<Window>, 
/**
 * Hours a model the catalogue dropped stays on this disk (a task may
 * still come for it, or the owner may add it back), then it is deleted,
 * unless the donor pinned it or chats with it. 0: deleted at once.
 */
models_keep_dropped_hours: number, 
/**
 * Programs (as `ps` names them, or their file names, any case) while any
 * of which runs, the GPU is not given (BOINC's exclusive applications).
 */
exclusive_programs: Array<string>, 
/**
 * While one runs, nothing is given at all, not only the GPU.
 */
exclusive_stops_all: boolean, 
/**
 * Minutes after the last of them exits before giving resumes.
 */
exclusive_resume_minutes: number, 
/**
 * Paused by the owner (the tray's pause): nothing is given.
 */
paused: boolean, 
/**
 * GPU work paused on its own: tasks still run, on the CPU only.
 */
gpu_paused: boolean, on_pause: OnPause, };

export type When = { "mode": "always" } | { "mode": "idle", minutes: number, } | { "mode": "windows", windows: Array<Window>, };

export type Window = { start: string, end: string, };

export type OnPause = "finish" | "release";

export type Decision = { give: boolean, 
/**
 * One sentence for the owner: why the machine is (not) giving now.
 */
reason: string, max_in_flight: number, threads: number, 
/**
 * Where the chat model's layers go.
 */
offload: Offload, 
/**
 * On which GPUs (the policy's names; none: every GPU).
 */
gpus: Array<string>, 
/**
 * Idle minutes before the model is unloaded (0: never).
 */
keep_alive_minutes: number, 
/**
 * Running tasks go back to the hub now (only when not giving).
 */
release_running: boolean, };

export type Offload = { "mode": "fit", cap_mib: number | null, } | { "mode": "layers", layers: number, };

export type OffloadChoice = { 
/**
 * Layers on the GPU, the output layer counted as one (llama.cpp's `n_gpu_layers`).
 */
layers: number, 
/**
 * The model's repeating layers plus its output layer.
 */
model_layers: number, why: string, };

export type Device = { 
/**
 * llama.cpp's index for it in this process (the order may change at the next start).
 */
index: number, 
/**
 * Its PCI bus id ("0000:01:00.0"), where the backend knows it: what
 * tells two cards of one model apart, whatever their order.
 */
pci_id: string | null, name: string, description: string, backend: string, kind: DeviceKind, total_mib: number, free_mib: number, };

export type DeviceKind = "cpu" | "gpu" | "integrated_gpu" | "accelerator" | "unknown";

export type IngestEvent = { "event": "file" } & Progress | { "event": "finished", folder: string, added: number, unchanged: number, failed: number, skipped: number, removed: number, 
/**
 * Entries left out unread (hidden, ignored, dependency trees, lock files, minified or
 * generated), each named once: a folder for everything under it.
 */
left_out: Array<LeftOutEntry>, } | { "event": "stopped", folder: string, error: string, };

export type LeftOutEntry = { path: string, kind: LeftOut, 
/**
 * The reason, as a person reads it.
 */
reason: string, };

export type LeftOut = "hidden" | "ignored" | "dependencies" | "lock_file" | "source_map" | "minified" | "generated";

export type WalkOptions = { 
/**
 * Take hidden entries and what ignore files name too.
 */
no_ignore: boolean, 
/**
 * Take dependency trees, lock files, source maps, minified and generated files too.
 */
include_generated: boolean, };

export type Progress = { 
/**
 * Files handled so far, this one included, out of `total`.
 */
done: number, total: number, path: string, outcome: Outcome, };

export type Outcome = { "kind": "added" } | { "kind": "unchanged" } | { "kind": "failed", "reason": string } | { "kind": "skipped" };

export type DocumentInfo = { path: string, chunks: number, 
/**
 * Bytes of text stored (not of the original file).
 */
text_bytes: number, 
/**
 * Unix seconds.
 */
ingested_at: number, };

export type Citation = { path: string, position: number, span: [number, number], content: string, 
/**
 * Reciprocal-rank-fusion score of the vector and full-text rankings.
 */
score: number, 
/**
 * Cosine similarity of the chunk to the query (how relevant it is at all).
 */
similarity: number, 
/**
 * The page the chunk starts on, for paged documents (PDF).
 */
page: number | null, 
/**
 * The lines the chunk covers (first, last; from 1), for source code.
 */
lines: [number, number] | null, 
/**
 * Other places the same passage (or a near copy) appears, best first:
 * one hit stands for them all (`dedup::collapse`).
 */
also: Array<Place>, };

export type Place = { path: string, position: number, page: number | null, };

export type ModelsView = { imported: Array<ModelInfo>, 
/**
 * The file answering tasks now.
 */
active: string | null, 
/**
 * Models the app offers to download.
 */
catalogue: Array<CatalogueEntry>, 
/**
 * Where `hf:` models come from (Hugging Face, or the owner's mirror).
 */
endpoint: string, 
/**
 * A download is in progress.
 */
pulling: boolean, 
/**
 * The models the limb fetched for the tenant's catalogue (and when it dropped any).
 */
fetched: Array<FetchedModel>, 
/**
 * Hours a dropped one stays before it is deleted (unless pinned).
 */
keep_dropped_hours: number, };

export type ModelInfo = { id: string, path: string, size_bytes: number, architecture: string | null, name: string | null, 
/**
 * As the file labels it, e.g. "0.5B".
 */
parameters: string | null, quantization: string | null, context_length: number | null, has_chat_template: boolean, is_default: boolean, 
/**
 * The donor keeps it: a model the tenant's catalogue dropped is not deleted.
 */
pinned: boolean, };

export type CatalogueEntry = { name: string, 
/**
 * Where from: an `hf:` reference (resolved under the chosen endpoint) or a URL.
 */
source: string, file: string, size_bytes: number, sha256: string, license: string, good_at: string, };

export type PullProgress = { source: string, have: number, total: number | null, };

export type SettingsView = { settings: Settings, channels: [string, string], autostart: boolean, data_dir: string, 
/**
 * This app's identity at its hub (hex), once connected.
 */
identity: string | null, };

export type Settings = { donation: DonationPolicy, updates: UpdateSettings, 
/**
 * Someone else's hub to give to; `None` runs the local hub.
 */
hub: RemoteHub | null, 
/**
 * Where `hf:` models are downloaded from instead of Hugging Face (a
 * mirror, as `HF_ENDPOINT` names one); `None`: Hugging Face.
 */
model_mirror: string | null, };

export type UpdateSettings = { 
/**
 * Where to look for `latest.json`; `None` until the owner sets one.
 */
endpoint: string | null, 
/**
 * "stable" or "beta": substituted for `{{channel}}` in the endpoint.
 */
channel: string, };

export type UpdateCheck = { current: string, 
/**
 * The newer version, downloaded and verified; `None` when up to date.
 */
verified: string | null, notes: string | null, };
