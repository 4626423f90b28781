//! The hub's rules about secrets. The hub makes none: SpacetimeDB 1.2's
//! `ctx.random()` is a `StdRng` seeded with the reducer call's timestamp, so
//! anything drawn from it can be computed by whoever knows roughly when the
//! call ran. Codes (invites, dashboard and operator codes, tenant-creation
//! codes, the cutover's claim codes) are made by clients from the operating
//! system's CSPRNG; the hub keeps only their SHA-256 ([`code_hash`]) and
//! compares hashes. Spot checks of trusted limbs are decided when a result
//! arrives, keyed by a secret the hub's admin supplied ([`spot_check_roll`]).
//! Wrong codes are counted and limited per identity and hub-wide
//! ([`Attempts`]).

use sha2::{Digest, Sha256};

/// Random bytes in a code a client makes: 128 bits.
pub const CODE_BYTES: usize = 16;
/// A code's hash as the hub stores it: SHA-256, lowercase hex.
pub const CODE_HASH_CHARS: usize = 64;
/// The admin's spot-check key: 32 bytes, hex.
pub const SPOT_CHECK_KEY_BYTES: usize = 32;
/// Longest code anyone may present: longer is refused before hashing.
pub const MAX_CODE_CHARS: usize = 256;

/// What the hub stores for `code`: SHA-256 of its text (trimmed), in hex.
/// The client computes the same to send when it creates a code, so the code
/// itself never reaches the hub until someone redeems it.
pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().as_bytes()))
}

/// A code hash as a client sends it when creating a code.
pub fn check_code_hash(hash: &str) -> Result<(), String> {
    if hash.len() == CODE_HASH_CHARS && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err("a code is sent as its SHA-256 in lowercase hex (64 characters); the code itself stays with its maker"
            .into())
    }
}

/// A code someone presents, before it is hashed.
pub fn check_presented_code(code: &str) -> Result<(), String> {
    if code.trim().is_empty() || code.len() > MAX_CODE_CHARS {
        return Err("that is not a code".into());
    }
    Ok(())
}

/// A row stored before codes were hashed holds the code itself (32 hex
/// characters drawn from the timestamp-seeded generator): it can be
/// guessed, so it is never honoured.
pub fn is_legacy_clear_code(stored: &str) -> bool {
    stored.len() != CODE_HASH_CHARS
}

/// The admin's spot-check key, as hex.
pub fn parse_spot_check_key(key_hex: &str) -> Result<Vec<u8>, String> {
    match hex::decode(key_hex) {
        Ok(bytes) if bytes.len() == SPOT_CHECK_KEY_BYTES => Ok(bytes),
        _ => Err(format!("a spot-check key is {SPOT_CHECK_KEY_BYTES} random bytes in hex")),
    }
}

/// The spot-check roll for a replicated task, uniform in 0..100: a keyed
/// hash of the task's id under the admin's secret key, so a limb, which
/// never sees the key, cannot compute it; and it is read only when the
/// limb's answer has arrived, so nothing the limb could see before
/// answering depends on it.
pub fn spot_check_roll(key: &[u8], task_id: u64) -> u32 {
    let digest = Sha256::new()
        .chain_update(b"heiwa spot check\0")
        .chain_update(key)
        .chain_update(task_id.to_le_bytes())
        .finalize();
    // 2^64 mod 100 = 16: the bias this leaves is below 1e-17.
    (u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) % 100) as u32
}

/// Who may create a tenant on a hub (its admin decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantCreation {
    /// Only the hub's admin (the default: a stranger cannot fill the hub).
    AdminOnly,
    /// Any identity (`heiwa hub up` on a loopback address: every caller is on this machine).
    Anyone,
    /// Holders of a code the admin made (`create_tenant_with_code`), and the admin.
    WithCode,
}

impl TenantCreation {
    pub fn name(self) -> &'static str {
        match self {
            TenantCreation::AdminOnly => "admin",
            TenantCreation::Anyone => "anyone",
            TenantCreation::WithCode => "code",
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        [TenantCreation::AdminOnly, TenantCreation::Anyone, TenantCreation::WithCode]
            .into_iter()
            .find(|policy| policy.name() == name)
            .ok_or_else(|| format!("who may create tenants: admin, anyone or code, not {name:?}"))
    }

    /// May a caller create a tenant, `admin` telling whether it is the hub's admin
    /// and `with_code` whether it presented a valid tenant-creation code?
    pub fn allows(self, admin: bool, with_code: bool) -> Result<(), String> {
        match self {
            _ if admin => Ok(()),
            TenantCreation::Anyone => Ok(()),
            TenantCreation::WithCode if with_code => Ok(()),
            TenantCreation::WithCode => {
                Err("this hub creates tenants only for holders of a code from its admin (heiwa tenant create --code)"
                    .into())
            }
            TenantCreation::AdminOnly => Err("only this hub's admin may create tenants on it".into()),
        }
    }
}

/// Default: the hub's admin alone creates tenants.
pub const DEFAULT_TENANT_CREATION: TenantCreation = TenantCreation::AdminOnly;
/// Default cap on tenants that identities other than the admin create (all of them together).
pub const DEFAULT_MAX_TENANTS: u32 = 1_000;
/// Default: wrong codes one identity may present in a window …
pub const DEFAULT_FAILURES_PER_IDENTITY: u32 = 10;
/// … and all identities together.
pub const DEFAULT_FAILURES_HUB_WIDE: u32 = 200;
pub const DEFAULT_FAILURE_WINDOW_SECS: u32 = 600;

/// Wrong codes counted in a fixed window (per identity, or hub-wide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempts {
    pub failures: u32,
    /// When the window began, microseconds since the epoch.
    pub window_start: i64,
}

impl Attempts {
    /// The count as of `now`: a window older than `window_secs` starts afresh.
    pub fn at(self, now: i64, window_secs: u32) -> Attempts {
        if now - self.window_start >= i64::from(window_secs) * 1_000_000 {
            Attempts { failures: 0, window_start: now }
        } else {
            self
        }
    }

    /// May one more code be tried under `limit`? If not, the error says
    /// when to try again (its window's end, seconds from `now`).
    pub fn check(self, now: i64, limit: u32, window_secs: u32, whose: &str) -> Result<(), String> {
        let current = self.at(now, window_secs);
        if current.failures < limit {
            return Ok(());
        }
        let retry_in = (current.window_start + i64::from(window_secs) * 1_000_000 - now).max(0);
        let secs = (retry_in + 999_999) / 1_000_000;
        Err(format!("too many wrong codes {whose}: try again in {secs} s"))
    }

    /// One more wrong code.
    pub fn failed(self, now: i64, window_secs: u32) -> Attempts {
        let current = self.at(now, window_secs);
        Attempts { failures: current.failures + 1, ..current }
    }
}

/// The limits on wrong codes, as the admin sets them.
pub fn check_attempt_limits(per_identity: u32, hub_wide: u32, window_secs: u32) -> Result<(), String> {
    if per_identity == 0 || hub_wide == 0 || !(1..=86_400).contains(&window_secs) {
        return Err("wrong-code limits must be at least 1, in a window of 1 s to 1 day".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_hash_is_sha256_hex_of_the_trimmed_code() {
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(code_hash(" abc\n"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(check_code_hash(&code_hash("x")).is_ok());
        assert!(check_code_hash("ABC").is_err());
        assert!(check_code_hash(&code_hash("x").to_uppercase()).is_err(), "one spelling only");
        assert!(is_legacy_clear_code("0123456789abcdef0123456789abcdef"));
        assert!(!is_legacy_clear_code(&code_hash("x")));
        assert!(check_presented_code("  ").is_err() && check_presented_code(&"a".repeat(300)).is_err());
    }

    #[test]
    fn spot_check_rolls_depend_on_the_key_and_spread_evenly() {
        let key = [7u8; SPOT_CHECK_KEY_BYTES];
        let other = [8u8; SPOT_CHECK_KEY_BYTES];
        let rolls: Vec<u32> = (0..10_000).map(|id| spot_check_roll(&key, id)).collect();
        assert!(rolls.iter().all(|roll| *roll < 100));
        let under_ten = rolls.iter().filter(|roll| **roll < 10).count();
        assert!((850..1150).contains(&under_ten), "about a tenth: {under_ten}");
        let same = (0..1000).filter(|id| spot_check_roll(&key, *id) == spot_check_roll(&other, *id)).count();
        assert!(same < 40, "another key, other rolls: {same} of 1000 equal");
        assert_eq!(parse_spot_check_key(&hex::encode(key)).unwrap(), key.to_vec());
        assert!(parse_spot_check_key("00").is_err() && parse_spot_check_key(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn tenant_creation_follows_the_policy() {
        for policy in [TenantCreation::AdminOnly, TenantCreation::Anyone, TenantCreation::WithCode] {
            assert_eq!(TenantCreation::parse(policy.name()), Ok(policy));
            assert!(policy.allows(true, false).is_ok(), "the admin always may");
        }
        assert!(TenantCreation::AdminOnly.allows(false, true).is_err());
        assert!(TenantCreation::WithCode.allows(false, false).is_err());
        assert!(TenantCreation::WithCode.allows(false, true).is_ok());
        assert!(TenantCreation::Anyone.allows(false, false).is_ok());
        assert!(TenantCreation::parse("everyone").is_err());
    }

    #[test]
    fn wrong_codes_are_limited_per_window_and_say_when_to_retry() {
        let second = 1_000_000;
        let mut attempts = Attempts { failures: 0, window_start: 0 };
        for i in 0..3 {
            assert!(attempts.check(i * second, 3, 60, "here").is_ok());
            attempts = attempts.failed(i * second, 60);
        }
        let refusal = attempts.check(10 * second, 3, 60, "from this identity").unwrap_err();
        assert_eq!(refusal, "too many wrong codes from this identity: try again in 50 s");
        assert!(attempts.check(60 * second, 3, 60, "here").is_ok(), "a new window");
        assert_eq!(attempts.failed(61 * second, 60), Attempts { failures: 1, window_start: 61 * second });
        assert!(check_attempt_limits(0, 1, 1).is_err() && check_attempt_limits(1, 1, 0).is_err());
        assert!(check_attempt_limits(10, 200, 600).is_ok());
    }
}
