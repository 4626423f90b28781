//! The rules about tasks, as plain functions over plain values so that unit
//! tests run natively without a server. The hub's reducers (`hub-module`) only
//! load rows, call these, and write the result; the limb uses the same limits
//! and state names, so there is one copy of each.
//!
//! One dependency by default, `sha2` (a code's hash must be the same where a
//! client makes it and where the hub checks it). With the `spacetimedb` feature (only `hub-module`
//! turns it on) [`TaskState`] is also the hub's column type; with `serde` and
//! `ts` the limb sends it to the window by the same names as [`TaskState::name`].

pub mod catalogue;
pub mod credit;
pub mod migration;
pub mod secrets;
mod work;
pub use work::{check_scored, generate_payload, score_payload, score_quorum, score_summary, score_vote, Work};

/// Largest task payload a tenant may submit.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Largest summary a limb may send back: the hub stores summaries, not documents.
pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;
/// Longest failure reason kept on a task.
pub const MAX_REASON_BYTES: usize = 1024;
/// A signed statement about a result (heiwa-provenance): hashes and names, a few KiB at most.
pub const MAX_STATEMENT_BYTES: usize = 8 * 1024;
/// Ed25519: a 32-byte public key, a 64-byte signature.
pub const PUBLIC_KEY_BYTES: usize = 32;
pub const SIGNATURE_BYTES: usize = 64;
/// Longest limb or tenant name.
pub const MAX_NAME_CHARS: usize = 64;
/// A limb's lease: how long a claim lives without a heartbeat.
pub const MIN_LEASE_SECS: u32 = 2;
pub const MAX_LEASE_SECS: u32 = 3600;
/// Assignments a task may have before an expired lease fails it instead of retrying.
pub const MAX_ATTEMPTS: u32 = 3;
/// Most tasks one limb may ask to hold at once.
pub const MAX_CAPACITY: u32 = 64;
/// Results one `complete_tasks_signed` call carries at most: a limb holds
/// at most [`MAX_CAPACITY`] tasks, so it never has more to send at once.
pub const MAX_RESULT_BATCH: usize = MAX_CAPACITY as usize;
/// Most models one limb may offer (its own, and every model of its tenant's
/// catalogue it may have fetched), and the longest model name it may give.
pub const MAX_MODELS: usize = 16 + catalogue::MAX_CATALOGUE_MODELS;
pub const MAX_MODEL_CHARS: usize = 128;
/// Longest `submit_task_once` key.
pub const MAX_SUBMIT_KEY_CHARS: usize = 128;

/// A hub's defaults for every tenant; the hub's admin (who published it) may change them.
pub const DEFAULT_MAX_OPEN_TASKS: u32 = 10_000;
pub const DEFAULT_SUBMITS_PER_SEC: u32 = 50;
pub const DEFAULT_SUBMIT_BURST: u32 = 500;
/// Finished tasks and their results are kept a week, then pruned.
pub const DEFAULT_RETAIN_SECS: u64 = 7 * 86_400;
pub const DEFAULT_PRUNE_EVERY_SECS: u64 = 60;

/// Where a task is in its life. The hub assigns `Pending` tasks to limbs;
/// an assigned task is `Claimed`: one limb holds it under a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "spacetimedb", derive(spacetimedb::SpacetimeType))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TaskState {
    Pending,
    Claimed,
    Done,
    Failed,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 5] =
        [TaskState::Pending, TaskState::Claimed, TaskState::Done, TaskState::Failed, TaskState::Cancelled];

    /// The state's name as people read it (the CLI, the window, the summary).
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Claimed => "claimed",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

/// How a task submitted with replicas stands (the hub's `replica_set.verdict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "spacetimedb", derive(spacetimedb::SpacetimeType))]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
pub enum QuorumState {
    /// Copies are running (or waiting for limbs of other donors).
    Open,
    /// Its first copy went to a trusted limb and the spot check passed it by: not copied.
    Trusted,
    /// Enough copies agreed: the set's answer is the task's.
    Agreed,
    /// No majority even with a tie-breaker: disputed.
    Disputed,
}

impl QuorumState {
    pub const ALL: [QuorumState; 4] =
        [QuorumState::Open, QuorumState::Trusted, QuorumState::Agreed, QuorumState::Disputed];

    pub fn name(self) -> &'static str {
        match self {
            QuorumState::Open => "open",
            QuorumState::Trusted => "trusted",
            QuorumState::Agreed => "agreed",
            QuorumState::Disputed => "disputed",
        }
    }
}

/// A model a limb offers: by the name it is known by (`model_id`) and by its
/// file's sha256. A task that names a model, by either, goes only to limbs
/// that offer it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "spacetimedb", derive(spacetimedb::SpacetimeType))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ModelOffer {
    pub id: String,
    pub sha256: String,
}

/// Does a limb offering `models` serve a task that wants `wanted` (empty: any model)?
pub fn offers(models: &[ModelOffer], wanted: &str) -> bool {
    wanted.is_empty() || models.iter().any(|m| m.id == wanted || (!m.sha256.is_empty() && m.sha256 == wanted))
}

/// `text` cut to at most `max_bytes` at a character boundary, so that what a
/// limb sends fits the hub's limits above.
pub fn truncate_to(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn check_size(what: &str, text: &str, limit: usize) -> Result<(), String> {
    if text.len() > limit {
        return Err(format!("{what} is {} bytes; the limit is {limit}", text.len()));
    }
    Ok(())
}

pub fn check_payload(payload: &str) -> Result<(), String> {
    if payload.trim().is_empty() {
        return Err("task payload is empty".into());
    }
    check_size("task payload", payload, MAX_PAYLOAD_BYTES)
}

pub fn check_summary(summary: &str) -> Result<(), String> {
    check_size("result summary", summary, MAX_SUMMARY_BYTES)
}

/// A limb's public signing key: an Ed25519 key is 32 bytes.
pub fn check_public_key(key: &[u8]) -> Result<(), String> {
    if key.len() != PUBLIC_KEY_BYTES {
        return Err(format!("a signing key is {PUBLIC_KEY_BYTES} bytes (Ed25519), not {}", key.len()));
    }
    Ok(())
}

/// The signed statement that comes with a result: its size and the
/// signature's; the signature itself is checked by whoever verifies it
/// (`heiwa task verify`), who need not trust the hub.
pub fn check_proof(statement: &str, signature: &[u8]) -> Result<(), String> {
    check_size("signed statement", statement, MAX_STATEMENT_BYTES)?;
    if signature.len() != SIGNATURE_BYTES {
        return Err(format!("a signature is {SIGNATURE_BYTES} bytes (Ed25519), not {}", signature.len()));
    }
    Ok(())
}

pub fn check_reason(reason: &str) -> Result<(), String> {
    check_size("failure reason", reason, MAX_REASON_BYTES)
}

pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let chars = name.trim().chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(format!("{what} name must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} name must not contain control characters"));
    }
    Ok(())
}

/// A refusal a client acts on, not only shows. The hub returns its text as
/// the reducer's error (a `String`, SpacetimeDB's convention for reducers, so
/// the rules here return `String` errors too); the client recognises it in the
/// failure it hears back with [`Refusal::recognise`]: the words are written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another connection with the limb's identity (a copied token) took
    /// over from this one: the limb stops.
    Superseded,
}

impl Refusal {
    const ALL: [Refusal; 1] = [Refusal::Superseded];

    fn text(self) -> &'static str {
        match self {
            Refusal::Superseded => {
                "this limb's identity is connected from elsewhere (a copied token?): that connection took over"
            }
        }
    }

    /// The refusal a reducer's failure carries, however the server words
    /// around it; `None` for any other failure.
    pub fn recognise(message: &str) -> Option<Refusal> {
        Self::ALL.into_iter().find(|refusal| message.contains(refusal.text()))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl From<Refusal> for String {
    fn from(refusal: Refusal) -> String {
        refusal.to_string()
    }
}

/// The longest an invite (of a limb, a submitter or a browser) stays valid.
pub const MAX_INVITE_TTL_SECS: u32 = 30 * 86_400;

pub fn check_invite_ttl(ttl_secs: u32) -> Result<(), String> {
    if ttl_secs == 0 || ttl_secs > MAX_INVITE_TTL_SECS {
        return Err("an invite's lifetime must be 1 s to 30 days".into());
    }
    Ok(())
}

pub fn check_lease_secs(secs: u32) -> Result<(), String> {
    if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&secs) {
        return Err(format!("lease must be {MIN_LEASE_SECS} to {MAX_LEASE_SECS} seconds, not {secs}"));
    }
    Ok(())
}

/// A `submit_task_once` key: what a producer names one submission by.
pub fn check_submit_key(key: &str) -> Result<(), String> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_SUBMIT_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(format!("a submit key is 1 to {MAX_SUBMIT_KEY_CHARS} printable characters"));
    }
    Ok(())
}

pub fn check_model(model: &str) -> Result<(), String> {
    if model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) {
        return Err(format!("a model is named by at most {MAX_MODEL_CHARS} printable characters"));
    }
    Ok(())
}

/// What a limb may offer: how many tasks it takes at once, and which models.
pub fn check_offer(capacity: u32, models: &[ModelOffer]) -> Result<(), String> {
    if capacity > MAX_CAPACITY {
        return Err(format!("a limb takes at most {MAX_CAPACITY} tasks at once, not {capacity}"));
    }
    if models.len() > MAX_MODELS {
        return Err(format!("a limb offers at most {MAX_MODELS} models, not {}", models.len()));
    }
    models.iter().try_for_each(|m| check_model(&m.id).and_then(|()| check_model(&m.sha256)))
}

/// Tasks a limb can still be given: what it offered, less what it holds.
pub fn free_slots(capacity: u32, held: u32) -> u32 {
    capacity.saturating_sub(held)
}

/// Copies of one task a submitter may ask for (1: no replication).
pub const MAX_REPLICAS: u32 = 3;
/// Consecutive agreed results after which a limb is trusted: its replicated
/// tasks are spot-checked instead of copied.
pub const TRUSTED_STREAK: u32 = 10;
/// How often a trusted limb's replicated task is copied all the same.
pub const SPOT_CHECK_PERCENT: u32 = 10;

pub fn check_replicas(replicas: u32) -> Result<(), String> {
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(format!("replicas is 1 to {MAX_REPLICAS} (1: no copies), not {replicas}"));
    }
    Ok(())
}

/// A copy's answer as copies are compared: its summary with every run of
/// whitespace made one space and the ends trimmed. Nothing more: for
/// deterministic work (a computation; greedy generation with the same model
/// file and backend) honest limbs send the same summary, so anything looser
/// would let a liar's near miss agree.
pub fn normalise_answer(summary: &str) -> String {
    summary.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the finished copies of a replicated task decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Copies still running.
    Waiting,
    /// These copies (indexes into the answers) agree: their answer is the task's.
    Agreed(Vec<usize>),
    /// The first `replicas` copies did not all agree: one more copy breaks the tie.
    TieBreak,
    /// Even with the tie-breaker no strict majority agrees.
    Disputed,
}

/// Decide a replicated task. `answers` has one entry per copy made so far, in
/// order: `None` while it runs, `Some(None)` for a copy that failed (it agrees
/// with nothing), `Some(Some(normalised answer))` for a result.
pub fn quorum(replicas: u32, answers: &[Option<Option<String>>]) -> Verdict {
    if answers.iter().any(Option::is_none) {
        return Verdict::Waiting;
    }
    let made = answers.len();
    let best = answers
        .iter()
        .enumerate()
        .filter_map(|(i, answer)| Some((i, answer.as_ref()?.as_ref()?)))
        .map(|(_, answer)| {
            answers
                .iter()
                .enumerate()
                .filter(|(_, other)| matches!(other, Some(Some(other)) if other == answer))
                .map(|(j, _)| j)
                .collect::<Vec<_>>()
        })
        .max_by_key(Vec::len)
        .unwrap_or_default();
    if made <= replicas as usize {
        if best.len() == made {
            Verdict::Agreed(best)
        } else {
            Verdict::TieBreak
        }
    } else if best.len() * 2 > made {
        Verdict::Agreed(best)
    } else {
        Verdict::Disputed
    }
}

/// Is a limb with `streak` consecutive agreed results trusted? Its
/// replicated tasks are then copied only when a spot check, decided when
/// its answer arrives, says so ([`needs_copies`]).
pub fn is_trusted(streak: u32) -> bool {
    streak >= TRUSTED_STREAK
}

/// Does a replicated task whose first copy was answered by a limb with
/// `streak` consecutive agreed results get its other copies? `roll` is
/// uniform in 0..100 ([`secrets::spot_check_roll`]); `None` (the hub has no
/// spot-check key) checks every one.
pub fn needs_copies(streak: u32, roll: Option<u32>) -> bool {
    !is_trusted(streak) || roll.is_none_or(|roll| roll < SPOT_CHECK_PERCENT)
}

/// Is `limb` the current, unexpired holder of a task? Completing, failing and
/// releasing all require it. `holder` is 0 for nobody; times are microseconds
/// since the epoch.
pub fn check_holder(
    task_id: u64,
    state: TaskState,
    holder: u64,
    lease_until: Option<i64>,
    limb: u64,
    now: i64,
) -> Result<(), String> {
    if state != TaskState::Claimed {
        return Err(format!("task {task_id} is {state:?}; only a claimed task can be completed, failed or released"));
    }
    if holder != limb {
        return Err(format!("task {task_id} is not held by limb {limb}"));
    }
    match lease_until {
        Some(until) if until >= now => Ok(()),
        _ => Err(format!("limb {limb}'s lease on task {task_id} has expired; the task will be retried")),
    }
}

/// What an expired lease turns a task into: retried while attempts remain.
pub fn after_lease_expiry(attempts: u32) -> TaskState {
    if attempts >= MAX_ATTEMPTS {
        TaskState::Failed
    } else {
        TaskState::Pending
    }
}

pub fn check_cancel(task_id: u64, state: TaskState) -> Result<(), String> {
    match state {
        TaskState::Pending | TaskState::Claimed => Ok(()),
        other => Err(format!("task {task_id} is already {other:?}")),
    }
}

/// Has a task reached the end of its life (nothing will change it again)?
pub fn is_finished(state: TaskState) -> bool {
    matches!(state, TaskState::Done | TaskState::Failed | TaskState::Cancelled)
}

/// The pending-task quota: `open` tasks (pending or claimed) already in the tenant.
pub fn check_open_tasks(open: u32, max_open: u32) -> Result<(), String> {
    if open >= max_open {
        return Err(format!(
            "your tenant has {open} unfinished tasks, its limit; submit more once some finish (nothing was lost)"
        ));
    }
    Ok(())
}

/// A tenant's submit allowance as a token bucket: `tokens` in thousandths,
/// refilled at `per_sec` up to `burst`, as of `at` (microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub milli_tokens: u64,
    pub at: i64,
}

impl Bucket {
    pub fn full(burst: u32, now: i64) -> Self {
        Bucket { milli_tokens: u64::from(burst) * 1000, at: now }
    }
}

/// Take one submit from the bucket, or say how long to wait.
pub fn take_submit(bucket: Bucket, now: i64, per_sec: u32, burst: u32) -> Result<Bucket, String> {
    let elapsed_micros = now.saturating_sub(bucket.at).max(0) as u64;
    let refill = elapsed_micros.saturating_mul(u64::from(per_sec)) / 1000;
    let milli_tokens = bucket.milli_tokens.saturating_add(refill).min(u64::from(burst) * 1000);
    if milli_tokens < 1000 {
        let wait_ms = if per_sec == 0 { u64::MAX } else { (1000 - milli_tokens) / u64::from(per_sec) + 1 };
        return Err(format!(
            "your tenant submits at most {per_sec} tasks a second (bursts of {burst}); try again in {wait_ms} ms"
        ));
    }
    Ok(Bucket { milli_tokens: milli_tokens - 1000, at: now })
}

/// Is something stamped `at` older than `retain_secs` at `now`? Times are
/// microseconds since the epoch.
pub fn is_past_retention(at: i64, now: i64, retain_secs: u64) -> bool {
    i128::from(now) - i128::from(at) > i128::from(retain_secs) * 1_000_000
}

/// May a task last changed at `updated_at` be pruned at `now`? Only finished
/// ones, once past the retention.
pub fn is_prunable(state: TaskState, updated_at: i64, now: i64, retain_secs: u64) -> bool {
    is_finished(state) && is_past_retention(updated_at, now, retain_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_lifetimes() {
        assert!(check_invite_ttl(1).is_ok());
        assert!(check_invite_ttl(MAX_INVITE_TTL_SECS).is_ok());
        assert!(check_invite_ttl(0).is_err());
        assert!(check_invite_ttl(MAX_INVITE_TTL_SECS + 1).is_err());
    }

    #[test]
    fn payload_limits() {
        assert!(check_payload("what is 6*7?").is_ok());
        assert_eq!(check_payload("  ").unwrap_err(), "task payload is empty");
        let big = "x".repeat(MAX_PAYLOAD_BYTES + 1);
        assert!(check_payload(&big).unwrap_err().contains("the limit is 16384"));
    }

    #[test]
    fn keys_and_proofs_have_their_sizes() {
        assert!(check_public_key(&[0; 32]).is_ok());
        assert!(check_public_key(&[0; 31]).is_err());
        assert!(check_proof("{}", &[0; 64]).is_ok());
        assert!(check_proof("{}", &[0; 63]).is_err());
        assert!(check_proof(&"s".repeat(MAX_STATEMENT_BYTES + 1), &[0; 64]).is_err());
    }

    #[test]
    fn summary_and_reason_limits() {
        assert!(check_summary("").is_ok());
        assert!(check_summary(&"y".repeat(MAX_SUMMARY_BYTES + 1)).is_err());
        assert!(check_reason(&"r".repeat(MAX_REASON_BYTES + 1)).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("limb", "workstation-1").is_ok());
        assert!(check_name("limb", " ").is_err());
        assert!(check_name("limb", "a\u{7}b").unwrap_err().contains("control"));
        assert!(check_name("tenant", &"n".repeat(65)).unwrap_err().starts_with("tenant name"));
    }

    #[test]
    fn lease_bounds() {
        assert!(check_lease_secs(30).is_ok());
        assert!(check_lease_secs(1).is_err());
        assert!(check_lease_secs(MAX_LEASE_SECS + 1).is_err());
    }

    fn offer(id: &str, sha256: &str) -> ModelOffer {
        ModelOffer { id: id.into(), sha256: sha256.into() }
    }

    #[test]
    fn a_pinned_task_needs_the_model_by_name_or_hash() {
        let models = [offer("qwen2.5-0.5b-instruct-q4_k_m", "ab12"), offer("local", "")];
        assert!(offers(&models, ""), "an unpinned task goes anywhere");
        assert!(offers(&[], ""));
        assert!(offers(&models, "qwen2.5-0.5b-instruct-q4_k_m"));
        assert!(offers(&models, "ab12"));
        assert!(!offers(&models, "llama-3-8b"));
        assert!(!offers(&[], "local"), "a limb offering nothing gets no pinned task");
    }

    #[test]
    fn offers_are_bounded() {
        assert!(check_offer(4, &[offer("m", "ab")]).is_ok());
        assert!(check_offer(0, &[]).is_ok(), "capacity 0 is how a limb stops taking work");
        assert!(check_offer(MAX_CAPACITY + 1, &[]).unwrap_err().contains("at most 64"));
        assert!(check_offer(1, &vec![offer("m", ""); MAX_MODELS + 1]).is_err());
        assert!(check_offer(1, &[offer(&"m".repeat(129), "")]).is_err());
        assert!(check_model("a b").is_ok() && check_model("a\u{0}b").is_err());
        assert_eq!((free_slots(4, 1), free_slots(1, 3)), (3, 0));
    }

    #[test]
    fn submit_keys_are_bounded() {
        assert!(check_submit_key("bot:42").is_ok());
        assert!(check_submit_key("").is_err());
        assert!(check_submit_key(&"k".repeat(129)).is_err());
        assert!(check_submit_key("a\u{7}").is_err());
    }

    #[test]
    fn only_the_unexpired_holder_completes() {
        assert!(check_holder(1, TaskState::Claimed, 7, Some(100), 7, 50).is_ok());
        assert!(check_holder(1, TaskState::Claimed, 7, Some(100), 8, 50).unwrap_err().contains("not held"));
        assert!(check_holder(1, TaskState::Claimed, 7, Some(100), 7, 101).unwrap_err().contains("expired"));
        assert!(check_holder(1, TaskState::Claimed, 7, None, 7, 0).is_err());
        assert!(check_holder(1, TaskState::Pending, 0, None, 7, 0).is_err());
        assert!(check_holder(1, TaskState::Done, 7, Some(100), 7, 50).is_err());
    }

    #[test]
    fn the_open_task_quota_refuses_at_the_limit() {
        assert!(check_open_tasks(9, 10).is_ok());
        assert!(check_open_tasks(10, 10).unwrap_err().contains("10 unfinished tasks"));
    }

    #[test]
    fn the_submit_bucket_allows_a_burst_then_the_rate() {
        const SEC: i64 = 1_000_000;
        let mut bucket = Bucket::full(3, 0);
        for _ in 0..3 {
            bucket = take_submit(bucket, 0, 2, 3).unwrap();
        }
        let refused = take_submit(bucket, 0, 2, 3).unwrap_err();
        assert!(refused.contains("at most 2 tasks a second") && refused.contains("501 ms"), "{refused}");
        let bucket = take_submit(bucket, SEC / 2, 2, 3).expect("half a second at 2/s refills one");
        assert!(take_submit(bucket, SEC / 2, 2, 3).is_err());
        let later = take_submit(bucket, 100 * SEC, 2, 3).unwrap();
        assert_eq!(later.milli_tokens, 2000, "refill stops at the burst");
        assert!(take_submit(Bucket::full(0, 0), SEC, 0, 0).is_err(), "a rate of 0 refuses all");
    }

    #[test]
    fn only_old_finished_tasks_are_pruned() {
        const SEC: i64 = 1_000_000;
        assert!(is_prunable(TaskState::Done, 0, 11 * SEC, 10));
        assert!(!is_prunable(TaskState::Done, 0, 9 * SEC, 10));
        assert!(is_prunable(TaskState::Failed, 0, 11 * SEC, 10) && is_prunable(TaskState::Cancelled, 0, 11 * SEC, 10));
        assert!(!is_prunable(TaskState::Pending, 0, 1000 * SEC, 10));
        assert!(!is_prunable(TaskState::Claimed, 0, 1000 * SEC, 10));
        assert!(!is_prunable(TaskState::Done, 0, i64::MAX, u64::MAX));
    }

    #[test]
    fn expired_leases_retry_then_fail() {
        assert_eq!(after_lease_expiry(1), TaskState::Pending);
        assert_eq!(after_lease_expiry(MAX_ATTEMPTS - 1), TaskState::Pending);
        assert_eq!(after_lease_expiry(MAX_ATTEMPTS), TaskState::Failed);
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_to("héllo", 2), "h");
        assert_eq!(truncate_to("héllo", 3), "hé");
        assert_eq!(truncate_to("hi", 10), "hi");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serialised_names_are_the_names() {
        for state in TaskState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.name());
        }
    }

    #[test]
    fn state_names_are_distinct() {
        let names: std::collections::BTreeSet<_> = TaskState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), TaskState::ALL.len());
        assert_eq!(TaskState::Pending.name(), "pending");
    }

    #[test]
    fn cancel_only_live_tasks() {
        assert!(check_cancel(1, TaskState::Pending).is_ok());
        assert!(check_cancel(1, TaskState::Claimed).is_ok());
        assert!(check_cancel(1, TaskState::Done).unwrap_err().contains("already Done"));
    }

    #[test]
    fn copies_agree_exactly_after_whitespace_or_go_to_a_tie_breaker() {
        let done = |a: &str| Some(Some(normalise_answer(a)));
        assert_eq!(quorum(2, &[done("42"), None]), Verdict::Waiting);
        assert_eq!(quorum(2, &[done("42"), done(" 42\n")]), Verdict::Agreed(vec![0, 1]));
        assert_eq!(quorum(2, &[done("42"), done("43")]), Verdict::TieBreak);
        assert_eq!(quorum(2, &[done("42"), Some(None)]), Verdict::TieBreak, "a failed copy agrees with nothing");
        assert_eq!(quorum(2, &[Some(None), Some(None)]), Verdict::TieBreak, "not even with another failure");
        assert_eq!(quorum(2, &[done("42"), done("43"), done("42")]), Verdict::Agreed(vec![0, 2]));
        assert_eq!(quorum(2, &[done("42"), done("43"), done("44")]), Verdict::Disputed);
        assert_eq!(quorum(3, &[done("a"), done("a"), done("b")]), Verdict::TieBreak, "k copies must all agree");
        assert_eq!(quorum(3, &[done("a"), done("a"), done("b"), done("a")]), Verdict::Agreed(vec![0, 1, 3]));
        assert_eq!(
            quorum(3, &[done("a"), done("a"), done("b"), done("b")]),
            Verdict::Disputed,
            "2 of 4 is no majority"
        );
        assert_ne!(normalise_answer("42."), normalise_answer("42"), "only whitespace is forgiven");
    }

    #[test]
    fn a_limb_earns_spot_checks_by_its_streak() {
        assert!(needs_copies(TRUSTED_STREAK - 1, Some(99)));
        assert!(!needs_copies(TRUSTED_STREAK, Some(SPOT_CHECK_PERCENT)));
        assert!(needs_copies(TRUSTED_STREAK, Some(SPOT_CHECK_PERCENT - 1)), "the spot check");
        assert!(needs_copies(TRUSTED_STREAK, None), "no key: every answer is checked");
        assert!(is_trusted(TRUSTED_STREAK) && !is_trusted(TRUSTED_STREAK - 1));
        assert!(check_replicas(0).is_err() && check_replicas(MAX_REPLICAS + 1).is_err() && check_replicas(2).is_ok());
    }

    #[test]
    fn a_refusal_is_recognised_in_the_failure_that_carries_it() {
        for refusal in Refusal::ALL {
            let failure = format!("The reducer returned an error: {refusal}");
            assert_eq!(Refusal::recognise(&failure), Some(refusal));
        }
        assert_eq!(Refusal::recognise("no limb 7 of yours"), None);
        assert_eq!(Refusal::recognise("this limb's identity is connected from elsewhere"), None, "a part is not it");
    }
}
