//! Discord's request signature: Ed25519 over the `X-Signature-Timestamp`
//! header followed by the raw body, with the application's public key
//! (<https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers>).
//! Anything else is answered 401 before the body is even parsed.

use ed25519_dalek::{Signature, VerifyingKey};

/// How far a request's timestamp may be from now: older ones are replays
/// (Discord answers within seconds; a few minutes allow for clock skew).
pub const MAX_AGE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsigned {
    #[error("the request carries no X-Signature-Ed25519 or X-Signature-Timestamp header")]
    Missing,
    #[error("the signature is not 64 bytes of hex")]
    Malformed,
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the timestamp is {0} s away from now: a replayed or delayed request")]
    Stale(i64),
    #[error("the signature does not match the body and timestamp under the application's key")]
    Wrong,
}

/// Check one request as it arrived. `now` is Unix seconds.
pub fn verify(
    key: &VerifyingKey,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Unsigned> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else { return Err(Unsigned::Missing) };
    let bytes: [u8; 64] =
        hex::decode(signature.trim()).ok().and_then(|bytes| bytes.try_into().ok()).ok_or(Unsigned::Malformed)?;
    let sent: i64 = timestamp.trim().parse().map_err(|_| Unsigned::BadTimestamp)?;
    let skew = now.saturating_sub(sent);
    if skew.abs() > MAX_AGE_SECS {
        return Err(Unsigned::Stale(skew));
    }
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    // `verify_strict` also refuses the weak keys and malleable signatures plain `verify` lets through.
    key.verify_strict(&message, &Signature::from_bytes(&bytes)).map_err(|_| Unsigned::Wrong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(body);
        hex::encode(key.sign(&message).to_bytes())
    }

    #[test]
    fn only_a_fresh_signature_by_the_application_key_over_this_body_passes() {
        let discord = SigningKey::from_bytes(&[7; 32]);
        let stranger = SigningKey::from_bytes(&[8; 32]);
        let key = discord.verifying_key();
        let body = br#"{"type":1}"#;
        let now = 1_800_000_000;
        let ts = now.to_string();
        let good = signed(&discord, &ts, body);
        assert_eq!(verify(&key, Some(&good), Some(&ts), body, now), Ok(()));
        assert_eq!(verify(&key, Some(&good), Some(&ts), br#"{"type":2}"#, now), Err(Unsigned::Wrong), "tampered");
        let other = signed(&stranger, &ts, body);
        assert_eq!(verify(&key, Some(&other), Some(&ts), body, now), Err(Unsigned::Wrong), "another key");
        let old = (now - MAX_AGE_SECS - 1).to_string();
        let replay = signed(&discord, &old, body);
        assert!(matches!(verify(&key, Some(&replay), Some(&old), body, now), Err(Unsigned::Stale(_))));
        assert_eq!(verify(&key, None, Some(&ts), body, now), Err(Unsigned::Missing));
        assert_eq!(verify(&key, Some("zz"), Some(&ts), body, now), Err(Unsigned::Malformed));
        assert_eq!(verify(&key, Some(&good), Some("soon"), body, now), Err(Unsigned::BadTimestamp));
        let moved = (now + 1).to_string();
        assert_eq!(verify(&key, Some(&good), Some(&moved), body, now), Err(Unsigned::Wrong), "the timestamp is signed");
    }
}
