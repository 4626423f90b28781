// The web dashboard's live view of one tenant, straight from the hub: one
// WebSocket (the SpacetimeDB TypeScript SDK and the generated bindings), one
// subscription, and the rows kept current by the SDK's row callbacks. Nothing
// polls. Row-level security on the hub decides what this browser sees; every
// reducer call is checked there again. The browser's identity token stays in
// this browser's storage.
import { Identity } from '@clockworklabs/spacetimedb-sdk';
import {
  DbConnection,
  type Browser,
  type CatalogueModel,
  type CreditEvent,
  type CreditRollup,
  type ErrorContext,
  type LateResult,
  type Limb,
  type LimbStats,
  type LimbTrust,
  type Member,
  type ReducerEventContext,
  type ReplicaSet,
  type TenantModelCopy,
  type TenantTask,
  type Tenant
} from '../generated/hub-bindings';
import { parseSummary } from '../shared/summary';
import type { Summary, TaskState } from '../generated/contract';

/** One limb's credit, in milli-credits (`creditByLimb`). */
export type CreditLine = { limbId: bigint; donor: string; paid: number; day: number; week: number; escrow: number; revoked: number; tasks: number };

/** Which hub (its WebSocket address) and database the page talks to. */
export type Where = { hub: string; database: string };

export type Status =
  | 'starting' // reading where the hub is
  | 'signed-out' // no identity in this tenant yet: a code is needed
  | 'connecting'
  | 'live' // subscribed: what is shown is the hub's state
  | 'lost' // the connection ended: what is shown is kept, and the page reconnects
  | 'refused'; // the hub refuses this browser (revoked): a new code is needed

// The desktop's and the hub's task states are one Rust type (hub-rules' TaskState).
export type { TaskState };

/** A task as the page shows it, with its result when it has one. */
export type TaskRow = {
  id: bigint;
  state: TaskState;
  payload: string;
  limb: bigint;
  attempts: number;
  createdMs: number;
  updatedMs: number;
  reason: string;
  /** A pending pinned task: why no limb runs it yet (`null`: it waits only for a free slot). */
  waiting: string | null;
  mine: boolean;
  result: { raw: string; summary: Summary | null; finishedMs: number } | null;
  /** When it is (a copy of) a task submitted with replicas: how the copies voted. */
  replicas: { verdict: string; copies: bigint[]; agreeing: bigint[]; replicas: number; note: string } | null;
  /** Results limbs sent after the task had gone on without them (kept, never the result). */
  late: Array<{ limb: bigint; summary: string }>;
};

// `tenant_task`, not `task` and `task_result`: see that table in hub-module for why.
// `code_attempt`: this browser's own row only, why the hub refused its code if it did.
const TABLES = [
  'tenant',
  'member',
  'limb',
  'limb_stats',
  'limb_trust',
  'tenant_task',
  'replica_set',
  'late_result',
  'browser',
  'catalogue_model',
  'tenant_model_copy',
  'credit_event',
  'credit_rollup',
  'code_attempt'
];
const RETRY_MS = [500, 1000, 2000, 4000, 5000];
const stateOf = (task: TenantTask) => task.state.tag.toLowerCase() as TaskState;
const ms = (t: { toDate(): Date }) => t.toDate().getTime();

function tokenKey(where: Where) {
  return `heiwa.face.token:${where.hub}/${where.database}`;
}

/** `hub`, `db` and `code` from a sign-in link's fragment (`#hub=…&db=…&code=…`). */
export function fromLink(fragment: string): Partial<Where> & { code?: string } {
  const params = new URLSearchParams(fragment.replace(/^#/, ''));
  const found: Partial<Where> & { code?: string } = {};
  if (params.get('hub')) found.hub = params.get('hub')!;
  if (params.get('db')) found.database = params.get('db')!;
  if (params.get('code')) found.code = params.get('code')!.trim();
  return found;
}

/** A pasted code or a whole sign-in link: the code in it. */
export function codeOf(input: string): string {
  const text = input.trim();
  const hash = text.indexOf('#');
  return hash >= 0 ? (fromLink(text.slice(hash)).code ?? '') : text;
}

class Face {
  status = $state<Status>('starting');
  /** What went wrong last, in words for the person looking at the page. */
  problem = $state('');
  where = $state<Where | null>(null);
  /** Bumped whenever a row changes: views derive from it instead of from the maps. */
  version = $state(0);
  /** When the first subscription applied, and the frame that showed it, in ms after the page started loading. */
  firstRowsMs: number | null = null;
  firstFrameMs: number | null = null;

  identity: Identity | null = null;
  tenant: Tenant | null = null;
  member: Member | null = null;
  tasks = new Map<bigint, TenantTask>();
  limbs = new Map<bigint, Limb>();
  stats = new Map<bigint, LimbStats>();
  trust = new Map<bigint, LimbTrust>();
  /** Replica sets by the submitted task's id. */
  replicaSets = new Map<bigint, ReplicaSet>();
  late = new Map<bigint, LateResult>();
  browsers = new Map<string, Browser>();
  /** The tenant's model catalogue, by row id. */
  catalogue = new Map<bigint, CatalogueModel>();
  /** Each limb's copy of each catalogue model (asked for, fetching, held, failed, no room), by row id. */
  copies = new Map<bigint, TenantModelCopy>();
  /** The tenant's credit ledger (append-only, written by the hub alone), by row id. */
  credit = new Map<bigint, CreditEvent>();
  /** Ledger rows past the hub's retention, added up, by limb id. */
  rollups = new Map<bigint, CreditRollup>();

  #conn: DbConnection | null = null;
  #retry = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #bumpQueued = false;
  /** Messages for reducer calls this page made, answered in order. */
  #waiting: Array<{ resolve: (error: string | null) => void }> = [];
  /** Milliseconds from a result's commit on the hub to the frame that shows it (the benchmark reads them); the latest 1,000. */
  updateLatencies: number[] = [];

  get canSubmit() {
    return this.status === 'live' && (this.member?.submits ?? false);
  }

  #bump() {
    if (this.#bumpQueued) return;
    this.#bumpQueued = true;
    queueMicrotask(() => {
      this.#bumpQueued = false;
      this.version++;
    });
  }

  /** Start from the page's address: a link's fragment, or the hub the serving `heiwa dashboard` names. */
  async start(fragment: string) {
    const link = fromLink(fragment);
    let where: Where | null = link.hub ? { hub: link.hub, database: link.database ?? 'heiwa' } : null;
    if (!where) where = JSON.parse(localStorage.getItem('heiwa.face.where') ?? 'null');
    if (!where) {
      try {
        const served = await fetch('hub.json');
        if (served.ok) where = await served.json();
      } catch {
        // A static host without hub.json: the sign-in link has to say where the hub is.
      }
    }
    if (!where) {
      this.status = 'signed-out';
      this.problem = 'This page does not know which hub to use: open the sign-in link the owner gave you.';
      return;
    }
    this.where = where;
    localStorage.setItem('heiwa.face.where', JSON.stringify(where));
    if (link.code) return this.signIn(link.code);
    if (localStorage.getItem(tokenKey(where))) return this.#connect(null);
    this.status = 'signed-out';
  }

  /** Sign this browser in with a one-use dashboard code: a new identity of its own joins the tenant. */
  signIn(input: string) {
    const code = codeOf(input);
    if (!this.where) return;
    if (!/^[0-9a-f]{32}$/.test(code)) {
      this.problem = 'That is not a dashboard code: it is 32 letters and digits, from `heiwa tenant dashboard-invite`.';
      this.status = 'signed-out';
      return;
    }
    localStorage.removeItem(tokenKey(this.where));
    this.#connect(code);
  }

  signOut() {
    if (this.where) localStorage.removeItem(tokenKey(this.where));
    this.#close();
    this.#clear();
    this.status = 'signed-out';
  }

  #close() {
    clearTimeout(this.#retryTimer);
    const conn = this.#conn;
    this.#conn = null;
    conn?.disconnect();
  }

  #clear() {
    for (const map of [this.tasks, this.limbs, this.stats, this.trust, this.replicaSets, this.late, this.browsers, this.catalogue, this.copies, this.credit, this.rollups])
      map.clear();
    this.tenant = null;
    this.member = null;
    this.#bump();
  }

  #connect(code: string | null) {
    const where = this.where!;
    this.#close();
    if (this.status !== 'lost') this.status = 'connecting';
    const conn = DbConnection.builder()
      .withUri(where.hub)
      .withModuleName(where.database)
      .withToken(localStorage.getItem(tokenKey(where)) ?? undefined)
      .onConnect((connected, identity, token) => {
        if (this.#conn !== connected) return;
        this.identity = identity;
        localStorage.setItem(tokenKey(where), token);
        this.#retry = 0;
        if (code) this.#join(connected, code);
        else this.#subscribe(connected);
      })
      .onConnectError((_ctx: ErrorContext, error: Error) => {
        if (this.#conn === conn) this.#lost(error);
      })
      .onDisconnect((_ctx: ErrorContext, error?: Error) => {
        if (this.#conn === conn) this.#lost(error);
      })
      .build();
    this.#conn = conn;
    this.#watch(conn);
  }

  #join(conn: DbConnection, code: string) {
    conn.reducers.onJoinDashboard((ctx: ReducerEventContext) => {
      if (!this.#mine(ctx)) return;
      const status = ctx.event.status;
      if (status.tag === 'Committed') {
        history.replaceState(null, '', location.pathname + location.search);
        this.problem = '';
        this.#subscribe(conn);
      } else {
        this.problem = status.tag === 'Failed' ? status.value : 'the hub refused the code';
        this.status = 'signed-out';
      }
    });
    conn.reducers.joinDashboard(code);
  }

  #subscribe(conn: DbConnection) {
    conn
      .subscriptionBuilder()
      .onApplied(() => {
        if (this.#conn !== conn) return;
        // A fresh cache replaces what was shown, all at once (after a reconnect too).
        this.#clear();
        for (const row of conn.db.tenant.iter()) this.tenant = row;
        for (const row of conn.db.member.iter()) if (this.#isMe(row.identity)) this.member = row;
        for (const row of conn.db.tenantTask.iter()) this.tasks.set(row.id, row);
        for (const row of conn.db.limb.iter()) this.limbs.set(row.id, row);
        for (const row of conn.db.limbStats.iter()) this.stats.set(row.limbId, row);
        for (const row of conn.db.limbTrust.iter()) this.trust.set(row.limbId, row);
        for (const row of conn.db.replicaSet.iter()) this.replicaSets.set(row.taskId, row);
        for (const row of conn.db.lateResult.iter()) this.late.set(row.id, row);
        for (const row of conn.db.browser.iter()) this.browsers.set(row.identity.toHexString(), row);
        for (const row of conn.db.catalogueModel.iter()) this.catalogue.set(row.id, row);
        for (const row of conn.db.tenantModelCopy.iter()) this.copies.set(row.id, row);
        for (const row of conn.db.creditEvent.iter()) this.credit.set(row.id, row);
        for (const row of conn.db.creditRollup.iter()) this.rollups.set(row.limbId, row);
        if (!this.member) {
          // A refused code commits (the hub counts wrong codes): its reason is in this browser's row.
          const refusal = [...conn.db.codeAttempt.iter()].find((row) => this.#isMe(row.identity))?.refusal;
          this.status = 'signed-out';
          this.problem = refusal
            ? `The hub refused the code: ${refusal}.`
            : 'This browser is not signed into a tenant on this hub: ask the owner for a dashboard code.';
          return;
        }
        this.status = 'live';
        this.problem = '';
        if (this.firstRowsMs === null) {
          this.firstRowsMs = performance.now();
          requestAnimationFrame(() => (this.firstFrameMs = performance.now()));
        }
      })
      .onError(() => {
        if (this.#conn === conn) this.problem = 'the hub refused this page’s subscription';
      })
      .subscribe(TABLES.map((table) => `SELECT * FROM ${table}`));
  }

  /** Row callbacks, registered once per connection. */
  #watch(conn: DbConnection) {
    const live = () => this.#conn === conn && this.status === 'live';
    conn.db.tenantTask.onInsert((_ctx, row) => live() && (this.tasks.set(row.id, row), this.#bump()));
    conn.db.tenantTask.onUpdate((_ctx, old, row) => {
      if (!live()) return;
      this.tasks.set(row.id, row);
      // Measured at the next frame: the row has been rendered by then.
      if (row.finishedAt && !old.finishedAt) {
        const finished = ms(row.finishedAt);
        requestAnimationFrame(() => {
          // Bounded: a page open for days must not grow with every task.
          if (this.updateLatencies.push(Date.now() - finished) > 1000) this.updateLatencies.shift();
        });
      }
      this.#bump();
    });
    conn.db.tenantTask.onDelete((_ctx, row) => live() && (this.tasks.delete(row.id), this.#bump()));
    conn.db.limb.onInsert((_ctx, row) => live() && (this.limbs.set(row.id, row), this.#bump()));
    conn.db.limb.onUpdate((_ctx, _old, row) => live() && (this.limbs.set(row.id, row), this.#bump()));
    conn.db.limb.onDelete((_ctx, row) => live() && (this.limbs.delete(row.id), this.#bump()));
    conn.db.limbStats.onInsert((_ctx, row) => live() && (this.stats.set(row.limbId, row), this.#bump()));
    conn.db.limbStats.onUpdate((_ctx, _old, row) => live() && (this.stats.set(row.limbId, row), this.#bump()));
    conn.db.limbTrust.onInsert((_ctx, row) => live() && (this.trust.set(row.limbId, row), this.#bump()));
    conn.db.limbTrust.onUpdate((_ctx, _old, row) => live() && (this.trust.set(row.limbId, row), this.#bump()));
    conn.db.replicaSet.onInsert((_ctx, row) => live() && (this.replicaSets.set(row.taskId, row), this.#bump()));
    conn.db.replicaSet.onUpdate((_ctx, _old, row) => live() && (this.replicaSets.set(row.taskId, row), this.#bump()));
    conn.db.replicaSet.onDelete((_ctx, row) => live() && (this.replicaSets.delete(row.taskId), this.#bump()));
    conn.db.lateResult.onInsert((_ctx, row) => live() && (this.late.set(row.id, row), this.#bump()));
    conn.db.lateResult.onDelete((_ctx, row) => live() && (this.late.delete(row.id), this.#bump()));
    conn.db.browser.onInsert((_ctx, row) => live() && (this.browsers.set(row.identity.toHexString(), row), this.#bump()));
    conn.db.browser.onUpdate((_ctx, _o, row) => live() && (this.browsers.set(row.identity.toHexString(), row), this.#bump()));
    conn.db.browser.onDelete((_ctx, row) => live() && (this.browsers.delete(row.identity.toHexString()), this.#bump()));
    conn.db.catalogueModel.onInsert((_ctx, row) => live() && (this.catalogue.set(row.id, row), this.#bump()));
    conn.db.catalogueModel.onUpdate((_ctx, _old, row) => live() && (this.catalogue.set(row.id, row), this.#bump()));
    conn.db.catalogueModel.onDelete((_ctx, row) => live() && (this.catalogue.delete(row.id), this.#bump()));
    conn.db.tenantModelCopy.onInsert((_ctx, row) => live() && (this.copies.set(row.id, row), this.#bump()));
    conn.db.tenantModelCopy.onUpdate((_ctx, _old, row) => live() && (this.copies.set(row.id, row), this.#bump()));
    conn.db.tenantModelCopy.onDelete((_ctx, row) => live() && (this.copies.delete(row.id), this.#bump()));
    conn.db.creditEvent.onInsert((_ctx, row) => live() && (this.credit.set(row.id, row), this.#bump()));
    // Retention rolls old rows into their limb's rollup, in one transaction: the sums stay.
    conn.db.creditEvent.onDelete((_ctx, row) => live() && (this.credit.delete(row.id), this.#bump()));
    conn.db.creditRollup.onInsert((_ctx, row) => live() && (this.rollups.set(row.limbId, row), this.#bump()));
    conn.db.creditRollup.onUpdate((_ctx, _old, row) => live() && (this.rollups.set(row.limbId, row), this.#bump()));
    conn.db.member.onDelete((_ctx, row) => {
      // The owner revoked this browser: the hub stops showing it anything at once.
      if (!live() || !this.#isMe(row.identity)) return;
      this.#close();
      this.#clear();
      this.status = 'refused';
      this.problem = 'The owner revoked this browser’s access. Ask for a new dashboard code to sign in again.';
    });
    conn.reducers.onSubmitTask((ctx) => this.#answered(ctx));
    conn.reducers.onSubmitTaskReplicated((ctx) => this.#answered(ctx));
    conn.reducers.onCancelTask((ctx) => this.#answered(ctx));
  }

  #isMe(identity: Identity) {
    return this.identity !== null && identity.isEqual(this.identity);
  }

  #mine(ctx: ReducerEventContext) {
    return this.#isMe(ctx.event.callerIdentity);
  }

  #answered(ctx: ReducerEventContext) {
    if (!this.#mine(ctx)) return;
    const status = ctx.event.status;
    this.#waiting.shift()?.resolve(status.tag === 'Committed' ? null : status.tag === 'Failed' ? status.value : 'out of energy');
  }

  /** A reducer call's outcome: null, or the hub's reason for refusing it. */
  #call(send: (conn: DbConnection) => void): Promise<string | null> {
    const conn = this.#conn;
    if (!conn || this.status !== 'live') return Promise.resolve('not connected to the hub; the page is reconnecting');
    return new Promise((resolve) => {
      this.#waiting.push({ resolve });
      send(conn);
    });
  }

  /** Submit a task; with `replicas` 2 or 3, limbs of that many donors answer it and the hub keeps what they agree on. */
  submit(payload: string, replicas = 1) {
    return this.#call((conn) =>
      replicas > 1 ? conn.reducers.submitTaskReplicated('', payload, '', replicas) : conn.reducers.submitTask(payload, '')
    );
  }

  cancel(taskId: bigint) {
    return this.#call((conn) => conn.reducers.cancelTask(taskId));
  }

  /** The connection ended: keep what is shown, say so, and try again (unless the hub refuses this browser). */
  async #lost(error?: Error) {
    this.#conn = null;
    for (const waiting of this.#waiting.splice(0)) waiting.resolve('the connection to the hub ended before it answered');
    if (this.status === 'refused' || this.status === 'signed-out') return;
    const refusal = await this.#refusal();
    if (refusal) {
      this.#clear();
      this.status = 'refused';
      this.problem = refusal;
      return;
    }
    this.status = 'lost';
    this.problem = `Lost the connection to the hub${error?.message ? ` (${error.message})` : ''}; reconnecting…`;
    const wait = RETRY_MS[Math.min(this.#retry++, RETRY_MS.length - 1)];
    this.#retryTimer = setTimeout(() => this.#connect(null), wait);
  }

  /**
   * Why the hub refuses this browser's token, if it does. The WebSocket only
   * closes; an HTTP reducer call runs the same connect check and answers 403
   * with its reason. The call is `join_dashboard` with no code, which changes
   * nothing whatever happens.
   */
  async #refusal(): Promise<string | null> {
    const where = this.where!;
    const token = localStorage.getItem(tokenKey(where));
    if (!token) return null;
    const http = where.hub.replace(/^ws/, 'http').replace(/\/$/, '');
    try {
      const reply = await fetch(`${http}/v1/database/${encodeURIComponent(where.database)}/call/join_dashboard`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: '[""]'
      });
      if (reply.status !== 403) return null;
      return `The hub refuses this browser: ${await reply.text()}. Ask the owner for a new dashboard code.`;
    } catch {
      return null; // the hub is unreachable: a lost connection, not a refusal
    }
  }

  /** The limbs that offer `model` (by id or file hash). */
  holders(model: string): Limb[] {
    return [...this.limbs.values()].filter((limb) => limb.models.some((m) => m.id === model || m.sha256 === model));
  }

  /** Each limb's copy of the catalogue model `modelId`. */
  copiesOf(modelId: string): TenantModelCopy[] {
    return [...this.copies.values()].filter((copy) => copy.modelId === modelId);
  }

  /**
   * Why a pending task pinned to `model` waits (`null`: a limb that has it is
   * online), in the words of `heiwa task show` (hub-rules' `why_waiting`, which
   * the dashboard's end-to-end test holds this to).
   */
  whyWaiting(model: string): string | null {
    if (!model || this.holders(model).some((limb) => limb.online)) return null;
    const entry = [...this.catalogue.values()].find((e) => e.modelId === model || e.sha256 === model);
    const copies = entry ? this.copiesOf(entry.modelId) : [];
    const online = (copy: TenantModelCopy) => this.limbs.get(copy.limbId)?.online ?? false;
    if (copies.some((copy) => copy.stage.tag === 'Held' && online(copy))) return null;
    const count = (tag: string) => copies.filter((copy) => copy.stage.tag === tag).length;
    const limbs = (n: number) => (n === 1 ? '1 limb' : `${n} limbs`);
    const held = count('Held');
    let why =
      held === 0
        ? `waiting: no limb holds ${model}`
        : held === 1
          ? `waiting: the one limb holding ${model} is offline`
          : `waiting: the ${held} limbs holding ${model} are offline`;
    const fetching = copies.filter((copy) => copy.stage.tag === 'Fetching');
    if (fetching.length) {
      const have = fetching.reduce((sum, c) => sum + (c.have < c.sizeBytes ? c.have : c.sizeBytes), 0n);
      const size = fetching.reduce((sum, c) => sum + c.sizeBytes, 0n);
      why += `; ${limbs(fetching.length)} fetching, ${size ? (have * 100n) / size : 0n} %`;
    }
    // Asked for it: online and about to fetch, waiting for their download hours, or offline.
    const wanted = (keep: (copy: TenantModelCopy) => boolean) =>
      copies.filter((copy) => copy.stage.tag === 'Wanted' && keep(copy)).length;
    const about = wanted((c) => online(c) && !c.reason);
    const deferred = wanted((c) => online(c) && !!c.reason);
    const offline = wanted((c) => !online(c));
    if (about) why += `; ${limbs(about)} about to fetch it`;
    if (deferred) why += `; ${limbs(deferred)} waiting for the donor's download hours`;
    if (count('Failed')) why += `; every source failed on ${limbs(count('Failed'))}`;
    if (count('NoRoom')) why += `; too large for the disk cap of ${limbs(count('NoRoom'))}`;
    if (offline) why += `; ${limbs(offline)} offline (to fetch it when back)`;
    if (!entry) why += " (it is not in the tenant's catalogue, so no limb will fetch it: heiwa tenant model add)";
    else if (copies.every((copy) => copy.stage.tag === 'Failed' || copy.stage.tag === 'NoRoom'))
      why += copies.length ? ' (no limb can get it)' : ' (no limb of the tenant to fetch it)';
    return why;
  }

  /**
   * Each limb's credit from the ledger, in milli-credits: paid (all time, the
   * last 24 h, the last 7 days), in escrow, revoked, results paid for — summed
   * as hub-rules' `Totals::add` sums them (`heiwa tenant credit`, which the
   * dashboard's end-to-end test compares with).
   */
  creditByLimb(now: number): CreditLine[] {
    const lines = new Map<bigint, CreditLine>();
    // Rows past the hub's retention, added up: all time only.
    for (const r of this.rollups.values()) {
      const [paid, escrow, revoked, tasks] = [r.milli, r.escrowMilli, r.revokedMilli, r.tasks].map(Number);
      lines.set(r.limbId, { limbId: r.limbId, donor: r.donor, paid, day: 0, week: 0, escrow, revoked, tasks });
    }
    for (const event of [...this.credit.values()].sort((a, b) => Number(a.id - b.id))) {
      const line = lines.get(event.limbId) ?? { limbId: event.limbId, donor: event.donor, paid: 0, day: 0, week: 0, escrow: 0, revoked: 0, tasks: 0 };
      lines.set(event.limbId, line);
      const milli = Number(event.milli);
      const age = now - ms(event.at);
      const pay = () => {
        line.paid += milli;
        line.tasks += 1;
        if (age < 86_400_000) line.day += milli;
        if (age < 7 * 86_400_000) line.week += milli;
      };
      switch (event.kind.tag) {
        case 'Earned':
          pay();
          break;
        case 'Escrowed':
          line.escrow += milli;
          break;
        case 'Released':
          line.escrow = Math.max(0, line.escrow - milli);
          pay();
          break;
        case 'Revoked':
          line.escrow = Math.max(0, line.escrow - milli);
          line.revoked += milli;
          break;
      }
    }
    return [...lines.values()];
  }

  /** Every task, newest first, with its result. */
  taskRows(): TaskRow[] {
    const rows: TaskRow[] = [];
    const setOf = new Map<bigint, ReplicaSet>();
    for (const set of this.replicaSets.values()) for (const copy of set.copies) setOf.set(copy, set);
    const lateOf = new Map<bigint, TaskRow['late']>();
    for (const late of this.late.values())
      lateOf.set(late.taskId, [...(lateOf.get(late.taskId) ?? []), { limb: late.limbId, summary: late.summary }]);
    for (const task of this.tasks.values()) {
      const set = setOf.get(task.id);
      rows.push({
        id: task.id,
        state: stateOf(task),
        payload: task.payload,
        limb: task.limbId,
        attempts: task.attempts,
        createdMs: ms(task.createdAt),
        updatedMs: ms(task.updatedAt),
        reason: task.reason,
        waiting: stateOf(task) === 'pending' ? this.whyWaiting(task.model) : null,
        mine: this.#isMe(task.submittedBy),
        result: task.finishedAt
          ? { raw: task.summary, summary: parseSummary(task.summary), finishedMs: ms(task.finishedAt) }
          : null,
        replicas: set
          ? {
              verdict: set.verdict.tag.toLowerCase(),
              copies: set.copies,
              agreeing: set.agreeing,
              replicas: set.replicas,
              note: set.note
            }
          : null,
        late: lateOf.get(task.id) ?? []
      });
    }
    return rows.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }
}

export const face = new Face();
