//! A tenant's model catalogue: what an entry must hold to be fetched safely,
//! how a limb's copy of a model stands, and why a task pinned to a model waits
//! (AI Horde's "is it possible, who can take it" in words).

/// Most models in one tenant's catalogue.
pub const MAX_CATALOGUE_MODELS: usize = 64;
/// Sources (URLs or `hf:` references) one entry may list, tried in order.
pub const MAX_SOURCES: usize = 8;
pub const MAX_SOURCE_CHARS: usize = 2048;
pub const MAX_FILE_CHARS: usize = 200;
pub const MAX_LICENSE_CHARS: usize = 200;

/// How one limb's copy of a catalogue model stands (`limb_model.stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "spacetimedb", derive(spacetimedb::SpacetimeType))]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ModelState {
    /// The hub asked for it (the catalogue keeps it ready, or a task waits for
    /// it); with a reason, the limb said why it waits (its donor's download hours).
    Wanted,
    /// Downloading: `have` of `size_bytes`.
    Fetching,
    /// On the limb's disk, verified, offered.
    Held,
    /// Every source failed (the reason says how); tried again when the owner adds the model again.
    Failed,
    /// The donor's disk cap for models cannot hold it: never fetched, never assigned.
    NoRoom,
}

impl ModelState {
    pub const ALL: [ModelState; 5] =
        [ModelState::Wanted, ModelState::Fetching, ModelState::Held, ModelState::Failed, ModelState::NoRoom];

    pub fn name(self) -> &'static str {
        match self {
            ModelState::Wanted => "wanted",
            ModelState::Fetching => "fetching",
            ModelState::Held => "held",
            ModelState::Failed => "failed",
            ModelState::NoRoom => "no room",
        }
    }
}

/// A catalogue entry as the owner gives it.
pub struct EntryCheck<'a> {
    pub model_id: &'a str,
    pub file: &'a str,
    pub size_bytes: u64,
    pub sha256: &'a str,
    pub sources: &'a [String],
    pub license: &'a str,
}

/// Whether an entry can be fetched safely: a plain `.gguf` file name (it
/// becomes a path on every donor's disk), a SHA-256 (nothing unverified is
/// run), a size (the donors' caps are checked before a byte), sources a limb
/// knows how to fetch.
pub fn check_entry(entry: &EntryCheck<'_>) -> Result<(), String> {
    if entry.model_id.is_empty() {
        return Err("a catalogue model needs an id (what tasks name with --model)".into());
    }
    crate::check_model(entry.model_id)?;
    let file = entry.file;
    if file.is_empty()
        || file.chars().count() > MAX_FILE_CHARS
        || file.starts_with('.')
        || file.contains(['/', '\\'])
        || file.chars().any(char::is_control)
        || !file.ends_with(".gguf")
    {
        return Err(format!(
            "the file name must be a plain name ending in .gguf, at most {MAX_FILE_CHARS} characters, not {file:?}"
        ));
    }
    if entry.size_bytes == 0 {
        return Err("the model's size in bytes is needed (donors' disk caps are checked before downloading)".into());
    }
    if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err("the model's SHA-256 is 64 lowercase hex digits: a limb runs nothing it cannot verify".into());
    }
    if entry.sources.is_empty() || entry.sources.len() > MAX_SOURCES {
        return Err(format!("a catalogue model lists 1 to {MAX_SOURCES} sources, not {}", entry.sources.len()));
    }
    for source in entry.sources {
        let known = ["http://", "https://", "hf:"].iter().any(|scheme| source.starts_with(scheme));
        if !known || source.chars().count() > MAX_SOURCE_CHARS || source.chars().any(char::is_control) {
            return Err(format!(
                "a source is an http(s) URL or hf:OWNER/REPO/FILE of at most {MAX_SOURCE_CHARS} characters, not {source:?}"
            ));
        }
    }
    if entry.license.chars().count() > MAX_LICENSE_CHARS || entry.license.chars().any(char::is_control) {
        return Err(format!("a license note is at most {MAX_LICENSE_CHARS} printable characters"));
    }
    Ok(())
}

/// One limb's copy of the model a task waits for, as the hub's rows say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    pub stage: ModelState,
    pub have: u64,
    pub size_bytes: u64,
    /// The limb is online now.
    pub online: bool,
    /// Wanted, and the limb said why it waits (outside its donor's download hours).
    pub deferred: bool,
}

/// Why a pending task pinned to `model` waits, in words for its owner;
/// `None` when a limb that can run it is online (it waits only for a slot).
/// `in_catalogue`: the tenant's catalogue lists the model (so limbs can fetch it).
pub fn why_waiting(model: &str, in_catalogue: bool, copies: &[Copy]) -> Option<String> {
    if model.is_empty() || copies.iter().any(|c| c.stage == ModelState::Held && c.online) {
        return None;
    }
    let count = |state: ModelState| copies.iter().filter(|c| c.stage == state).count();
    let limbs = |n: usize| if n == 1 { "1 limb".to_string() } else { format!("{n} limbs") };
    let mut why = match count(ModelState::Held) {
        0 => format!("waiting: no limb holds {model}"),
        1 => format!("waiting: the one limb holding {model} is offline"),
        offline => format!("waiting: the {offline} limbs holding {model} are offline"),
    };
    let fetching: Vec<&Copy> = copies.iter().filter(|c| c.stage == ModelState::Fetching).collect();
    if !fetching.is_empty() {
        let (have, size) =
            fetching.iter().fold((0u64, 0u64), |(h, s), c| (h + c.have.min(c.size_bytes), s + c.size_bytes));
        let percent = (have.saturating_mul(100)).checked_div(size).unwrap_or(0);
        why.push_str(&format!("; {} fetching, {percent} %", limbs(fetching.len())));
    }
    // Asked for it: online and about to fetch, waiting for their download hours, or offline.
    let wanted = |keep: fn(&Copy) -> bool| copies.iter().filter(|c| c.stage == ModelState::Wanted && keep(c)).count();
    let (about, deferred, offline) =
        (wanted(|c| c.online && !c.deferred), wanted(|c| c.online && c.deferred), wanted(|c| !c.online));
    if about > 0 {
        why.push_str(&format!("; {} about to fetch it", limbs(about)));
    }
    if deferred > 0 {
        why.push_str(&format!("; {} waiting for the donor's download hours", limbs(deferred)));
    }
    if count(ModelState::Failed) > 0 {
        why.push_str(&format!("; every source failed on {}", limbs(count(ModelState::Failed))));
    }
    if count(ModelState::NoRoom) > 0 {
        why.push_str(&format!("; too large for the disk cap of {}", limbs(count(ModelState::NoRoom))));
    }
    if offline > 0 {
        why.push_str(&format!("; {} offline (to fetch it when back)", limbs(offline)));
    }
    if !in_catalogue {
        why.push_str(" (it is not in the tenant's catalogue, so no limb will fetch it: heiwa tenant model add)");
    } else if copies.iter().all(|c| matches!(c.stage, ModelState::Failed | ModelState::NoRoom)) {
        why.push_str(if copies.is_empty() { " (no limb of the tenant to fetch it)" } else { " (no limb can get it)" });
    }
    Some(why)
}

/// How long a pending task may wait until it is done (AI Horde's
/// `wait_time`): `ahead` tasks the same limbs take first, at the pace they
/// finished `finished` tasks over the last `observed_secs` (the span from the
/// first of those to now). `None` without a pace to go by.
pub fn estimated_wait_secs(ahead: usize, finished: usize, observed_secs: f64) -> Option<f64> {
    (finished > 0).then(|| (ahead + 1) as f64 * observed_secs.max(1.0) / finished as f64)
}

fn duration_words(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

/// [`estimated_wait_secs`] in words, said as the guess from the recent past it
/// is (`window_secs`: how far back finished tasks are looked for).
pub fn wait_estimate(ahead: usize, finished: usize, observed_secs: f64, window_secs: u64) -> String {
    let queue = match ahead {
        0 => "next in line".to_string(),
        1 => "1 task ahead of it".to_string(),
        n => format!("{n} tasks ahead of it"),
    };
    let Some(secs) = estimated_wait_secs(ahead, finished, observed_secs) else {
        let minutes = window_secs / 60;
        return format!("{queue}; no limb that can run it finished a task in the last {minutes} minutes: no estimate");
    };
    let done = if finished == 1 { "1 task".to_string() } else { format!("{finished} tasks") };
    format!(
        "{queue}; done in about {} at the recent pace ({done} finished in the last {})",
        duration_words(secs),
        duration_words(observed_secs.max(1.0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32";

    fn entry<'a>(file: &'a str, sha256: &'a str, sources: &'a [String]) -> EntryCheck<'a> {
        EntryCheck { model_id: "coder", file, size_bytes: 10, sha256, sources, license: "Apache-2.0" }
    }

    #[test]
    fn an_entry_must_be_a_plain_gguf_with_a_hash_a_size_and_sources() {
        let sources = vec!["http://127.0.0.1:8080/m.gguf".to_string(), "hf:Qwen/R/m.gguf".to_string()];
        assert_eq!(check_entry(&entry("m.gguf", SHA, &sources)), Ok(()));
        for bad in ["../m.gguf", "a/m.gguf", ".m.gguf", "m.bin", "", "m\n.gguf"] {
            let refused = check_entry(&entry(bad, SHA, &sources)).unwrap_err();
            assert!(refused.contains("plain name ending in .gguf"), "{bad:?}: {refused}");
        }
        assert!(check_entry(&entry("m.gguf", &SHA.to_uppercase(), &sources)).unwrap_err().contains("SHA-256"));
        assert!(check_entry(&entry("m.gguf", "abc", &sources)).unwrap_err().contains("SHA-256"));
        assert!(check_entry(&entry("m.gguf", SHA, &[])).unwrap_err().contains("1 to 8 sources"));
        let ftp = ["ftp://host/m.gguf".to_string()];
        assert!(check_entry(&entry("m.gguf", SHA, &ftp)).unwrap_err().contains("http(s) URL or hf:"));
        let no_size = EntryCheck { size_bytes: 0, ..entry("m.gguf", SHA, &sources) };
        assert!(check_entry(&no_size).unwrap_err().contains("size in bytes"));
        let no_id = EntryCheck { model_id: "", ..entry("m.gguf", SHA, &sources) };
        assert!(check_entry(&no_id).unwrap_err().contains("needs an id"));
    }

    fn copy(state: ModelState, have: u64, online: bool) -> Copy {
        Copy { stage: state, have, size_bytes: 1000, online, deferred: false }
    }

    #[test]
    fn a_pinned_task_says_why_it_waits() {
        use ModelState::*;
        assert_eq!(why_waiting("m", true, &[copy(Held, 1000, true)]), None, "a holder is online: only a slot");
        assert_eq!(why_waiting("", false, &[]), None, "an unpinned task waits for no model");
        assert_eq!(
            why_waiting("m", false, &[]).unwrap(),
            "waiting: no limb holds m (it is not in the tenant's catalogue, so no limb will fetch it: heiwa tenant model add)"
        );
        assert_eq!(
            why_waiting("m", true, &[]).unwrap(),
            "waiting: no limb holds m (no limb of the tenant to fetch it)"
        );
        assert_eq!(
            why_waiting("m", true, &[copy(Fetching, 300, true), copy(Fetching, 500, true), copy(Wanted, 0, true)])
                .unwrap(),
            "waiting: no limb holds m; 2 limbs fetching, 40 %; 1 limb about to fetch it"
        );
        let later = Copy { deferred: true, ..copy(Wanted, 0, true) };
        assert_eq!(
            why_waiting("m", true, &[copy(Wanted, 0, true), later, later, copy(Wanted, 0, false)]).unwrap(),
            "waiting: no limb holds m; 1 limb about to fetch it; 2 limbs waiting for the donor's download hours; \
             1 limb offline (to fetch it when back)"
        );
        assert_eq!(
            why_waiting("m", true, &[copy(Failed, 0, true), copy(NoRoom, 0, true)]).unwrap(),
            "waiting: no limb holds m; every source failed on 1 limb; too large for the disk cap of 1 limb (no limb can get it)"
        );
        assert_eq!(
            why_waiting("m", true, &[copy(Held, 1000, false)]).unwrap(),
            "waiting: the one limb holding m is offline"
        );
    }

    #[test]
    fn a_wait_is_estimated_from_the_queue_ahead_and_the_recent_pace() {
        assert_eq!(
            wait_estimate(3, 0, 0.0, 600),
            "3 tasks ahead of it; no limb that can run it finished a task in the last 10 minutes: no estimate"
        );
        assert_eq!(
            wait_estimate(0, 60, 600.0, 600),
            "next in line; done in about 10 s at the recent pace (60 tasks finished in the last 10 min)"
        );
        assert_eq!(
            wait_estimate(1, 6, 90.0, 600),
            "1 task ahead of it; done in about 30 s at the recent pace (6 tasks finished in the last 2 min)"
        );
        assert_eq!(
            wait_estimate(99, 1, 600.0, 600),
            "99 tasks ahead of it; done in about 16.7 h at the recent pace (1 task finished in the last 10 min)"
        );
        assert_eq!(estimated_wait_secs(9, 20, 10.0), Some(5.0), "20 done in 10 s: ten more take 5 s");
        assert_eq!(estimated_wait_secs(9, 0, 10.0), None);
    }
}
