//! Provenance of a result. Each limb has an Ed25519 key of its own, made on
//! its first start and kept beside its hub token (0600, never logged); the
//! public half is registered on the hub with the limb. With every result the
//! limb signs a [`Statement`]: which task (its id and a hash of its payload),
//! the summary it sent (a hash), the engine, backend and model that answered,
//! the content hashes of the passages it cited and of the code its tool calls
//! ran, and its version.
//!
//! The signature is over the statement's exact bytes as stored on the hub (a
//! JSON text), so nothing needs to be re-serialised the same way to check it:
//! [`verify`] parses what was signed and compares it with the task and result
//! rows. What a good signature proves is in [`Verified::proves`]; what it
//! cannot prove (that the model really ran, that the passages say what the
//! answer claims) is said by [`Verified::does_not_prove`].

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The statement format this crate writes and checks.
pub const STATEMENT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("the limb's signing key {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
    #[error("the limb's signing key {path} is not a key (32 bytes as 64 hex digits); move it away to make a new one")]
    KeyMalformed { path: PathBuf },
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// What answered a task, as the executor knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What generated the answer: `llama.cpp`, `openai-compatible`, `echo`.
    pub engine: String,
    /// Where it ran (`cpu`, `vulkan`, `cuda`); empty when the limb cannot know (a remote server).
    pub backend: String,
    /// The model as the limb offers it (its id).
    pub model: String,
    /// The model file's sha256; empty when the limb has no file (a remote server).
    pub model_sha256: String,
    /// sha256 of each cited passage's text, in the order the answer cites them.
    pub chunks: Vec<String>,
    /// sha256 of the code of each tool call, in the order they ran.
    pub tool_code: Vec<String>,
}

/// What a limb signs about one result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub v: u32,
    pub task_id: u64,
    pub limb_id: u64,
    pub payload_sha256: String,
    pub summary_sha256: String,
    #[serde(flatten)]
    pub evidence: Evidence,
    pub limb_version: String,
}

impl Statement {
    pub fn new(task_id: u64, limb_id: u64, payload: &str, summary: &str, evidence: Evidence, version: &str) -> Self {
        Statement {
            v: STATEMENT_VERSION,
            task_id,
            limb_id,
            payload_sha256: sha256_hex(payload.as_bytes()),
            summary_sha256: sha256_hex(summary.as_bytes()),
            evidence,
            limb_version: version.into(),
        }
    }
}

/// A signed statement as it travels and is stored: the statement's JSON and
/// the signature over exactly those bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub statement: String,
    pub signature: Vec<u8>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The sha256 of everything `reader` gives (a model file: streamed, not read into memory).
pub fn sha256_of(mut reader: impl std::io::Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// A limb's signing key.
pub struct LimbKey {
    key: SigningKey,
}

impl LimbKey {
    /// The key kept beside the limb's token (`limb.token` → `limb.key`), made
    /// now if there is none. Written 0600 and whole (a new file only: two
    /// limbs starting at once never overwrite each other's key).
    pub fn beside(token_file: &Path) -> Result<LimbKey, ProvenanceError> {
        let path = token_file.with_extension("key");
        let failed = |source| ProvenanceError::KeyFile { path: path.clone(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .ok_or_else(|| ProvenanceError::KeyMalformed { path: path.clone() })?;
                let seed: [u8; 32] =
                    bytes.try_into().map_err(|_| ProvenanceError::KeyMalformed { path: path.clone() })?;
                Ok(LimbKey { key: SigningKey::from_bytes(&seed) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::getrandom(&mut seed).map_err(|e| ProvenanceError::Random(e.to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(failed)?;
                }
                let mut file =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode_0600().open(&path).map_err(failed)?;
                file.write_all(hex::encode(seed).as_bytes()).and_then(|()| file.sync_all()).map_err(failed)?;
                Ok(LimbKey { key: SigningKey::from_bytes(&seed) })
            }
            Err(e) => Err(failed(e)),
        }
    }

    /// The public half, as the hub keeps it.
    pub fn public(&self) -> Vec<u8> {
        self.key.verifying_key().to_bytes().to_vec()
    }

    pub fn sign(&self, statement: &Statement) -> Proof {
        let statement = serde_json::to_string(statement).expect("a statement serialises");
        let signature = self.key.sign(statement.as_bytes()).to_bytes().to_vec();
        Proof { statement, signature }
    }
}

impl std::fmt::Debug for LimbKey {
    /// Never the secret half, whatever logs it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LimbKey(public {})", hex::encode(self.public()))
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600);
        self
    }
}

/// Why a result's provenance does not hold.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the result carries no signed statement (sent by a limb without provenance)")]
    Unsigned,
    #[error("the answering limb registered no public key")]
    NoKey,
    #[error("the limb's registered public key is not an Ed25519 key")]
    BadKey,
    #[error("the signature does not match the statement and the limb's key: signed by another key, or altered")]
    BadSignature,
    #[error("the signed statement cannot be read: {0}")]
    Malformed(String),
    #[error("statement version {0} is not one this heiwa checks")]
    UnknownVersion(u32),
    #[error("the statement is about task {signed}, not task {task}")]
    OtherTask { signed: u64, task: u64 },
    #[error("the statement is signed for limb {signed}, but limb {answered} answered")]
    OtherLimb { signed: u64, answered: u64 },
    #[error("the task's payload is not the one the limb signed for")]
    PayloadChanged,
    #[error("the summary is not the one the limb signed: it was altered after the limb sent it")]
    SummaryChanged,
}

/// What a task and its result look like on the hub, to check a proof against.
pub struct Claimed<'a> {
    pub task_id: u64,
    pub payload: &'a str,
    pub limb_id: u64,
    pub summary: &'a str,
}

/// A proof that held.
#[derive(Debug)]
pub struct Verified {
    pub statement: Statement,
}

impl Verified {
    /// What a good signature establishes, in words a person reads.
    pub fn proves(&self) -> Vec<String> {
        let s = &self.statement;
        let e = &s.evidence;
        let mut proves = vec![
            format!(
                "limb {} (the holder of the key it registered) signed this summary for task {} and its payload",
                s.limb_id, s.task_id
            ),
            format!("the summary is unchanged since the limb signed it (sha256 {})", s.summary_sha256),
            format!(
                "the limb says the answer came from {} {}{} on {} (heiwa {})",
                e.engine,
                if e.model.is_empty() { "with no model" } else { &e.model },
                if e.model_sha256.is_empty() { String::new() } else { format!(" (sha256 {})", e.model_sha256) },
                if e.backend.is_empty() { "an unknown backend" } else { &e.backend },
                s.limb_version
            ),
        ];
        if !e.chunks.is_empty() {
            proves.push(format!(
                "it cited {} passage(s) with these content hashes: {}",
                e.chunks.len(),
                e.chunks.join(", ")
            ));
        }
        if !e.tool_code.is_empty() {
            proves.push(format!("its tool ran {} piece(s) of code: {}", e.tool_code.len(), e.tool_code.join(", ")));
        }
        proves
    }

    pub fn does_not_prove(&self) -> Vec<String> {
        vec![
            "that the model it names really produced the answer: a limb that lies signs its lie (replicas and \
             scoring check that)"
                .into(),
            "that the passages say what the answer claims: their hashes let whoever has the documents check".into(),
            "that the limb's machine is not compromised: only that its key signed".into(),
        ]
    }
}

/// Check `proof` against the rows of a task and its result, with the public
/// key the hub keeps for the limb that answered.
pub fn verify(
    claimed: &Claimed<'_>,
    proof: Option<&Proof>,
    public_key: Option<&[u8]>,
) -> Result<Verified, VerifyError> {
    let proof = proof.ok_or(VerifyError::Unsigned)?;
    let public_key = public_key.ok_or(VerifyError::NoKey)?;
    let key: [u8; 32] = public_key.try_into().map_err(|_| VerifyError::BadKey)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| VerifyError::BadKey)?;
    let signature = Signature::from_slice(&proof.signature).map_err(|_| VerifyError::BadSignature)?;
    key.verify(proof.statement.as_bytes(), &signature).map_err(|_| VerifyError::BadSignature)?;
    let statement: Statement =
        serde_json::from_str(&proof.statement).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if statement.v != STATEMENT_VERSION {
        return Err(VerifyError::UnknownVersion(statement.v));
    }
    if statement.task_id != claimed.task_id {
        return Err(VerifyError::OtherTask { signed: statement.task_id, task: claimed.task_id });
    }
    if statement.limb_id != claimed.limb_id {
        return Err(VerifyError::OtherLimb { signed: statement.limb_id, answered: claimed.limb_id });
    }
    if statement.payload_sha256 != sha256_hex(claimed.payload.as_bytes()) {
        return Err(VerifyError::PayloadChanged);
    }
    if statement.summary_sha256 != sha256_hex(claimed.summary.as_bytes()) {
        return Err(VerifyError::SummaryChanged);
    }
    Ok(Verified { statement })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path, name: &str) -> LimbKey {
        LimbKey::beside(&dir.join(format!("{name}.token"))).unwrap()
    }

    fn signed(key: &LimbKey) -> Proof {
        let evidence = Evidence {
            engine: "llama.cpp".into(),
            backend: "cpu".into(),
            model: "qwen".into(),
            model_sha256: "ab".repeat(32),
            chunks: vec![sha256_hex(b"a passage")],
            tool_code: vec![sha256_hex(b"print(6*7)")],
        };
        key.sign(&Statement::new(7, 3, "What is 6*7?", "42", evidence, "0.1.0"))
    }

    const CLAIMED: Claimed<'static> = Claimed { task_id: 7, payload: "What is 6*7?", limb_id: 3, summary: "42" };

    #[test]
    fn a_signed_result_verifies_and_says_what_it_proves() {
        let dir = tempfile::tempdir().unwrap();
        let key = key(dir.path(), "limb");
        let verified = verify(&CLAIMED, Some(&signed(&key)), Some(&key.public())).unwrap();
        assert_eq!(verified.statement.evidence.engine, "llama.cpp");
        let proves = verified.proves().join("\n");
        assert!(
            proves.contains("limb 3") && proves.contains("task 7") && proves.contains(&"ab".repeat(32)),
            "{proves}"
        );
        assert!(proves.contains("1 passage(s)") && proves.contains("1 piece(s) of code"), "{proves}");
        assert!(!verified.does_not_prove().is_empty());
    }

    #[test]
    fn another_key_a_tampered_summary_or_statement_and_another_task_fail() {
        let dir = tempfile::tempdir().unwrap();
        let (key, other) = (key(dir.path(), "limb"), key(dir.path(), "other"));
        let proof = signed(&key);
        let check = |claimed: &Claimed<'_>, proof: &Proof, public: &[u8]| verify(claimed, Some(proof), Some(public));
        assert_eq!(check(&CLAIMED, &proof, &other.public()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(check(&CLAIMED, &signed(&other), &key.public()).unwrap_err(), VerifyError::BadSignature);
        let tampered = Claimed { summary: "43", ..CLAIMED };
        assert_eq!(check(&tampered, &proof, &key.public()).unwrap_err(), VerifyError::SummaryChanged);
        let another_task = Claimed { task_id: 8, ..CLAIMED };
        assert_eq!(
            check(&another_task, &proof, &key.public()).unwrap_err(),
            VerifyError::OtherTask { signed: 7, task: 8 }
        );
        let another_payload = Claimed { payload: "What is 7*7?", ..CLAIMED };
        assert_eq!(check(&another_payload, &proof, &key.public()).unwrap_err(), VerifyError::PayloadChanged);
        let another_limb = Claimed { limb_id: 4, ..CLAIMED };
        assert!(matches!(check(&another_limb, &proof, &key.public()), Err(VerifyError::OtherLimb { .. })));
        // The statement edited to match a tampered summary: the signature no longer holds.
        let forged = Proof {
            statement: proof.statement.replace(&sha256_hex(b"42"), &sha256_hex(b"43")),
            signature: proof.signature.clone(),
        };
        assert_eq!(check(&tampered, &forged, &key.public()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(&CLAIMED, None, Some(&key.public())).unwrap_err(), VerifyError::Unsigned);
        assert_eq!(verify(&CLAIMED, Some(&proof), None).unwrap_err(), VerifyError::NoKey);
        assert_eq!(check(&CLAIMED, &proof, &[1, 2, 3]).unwrap_err(), VerifyError::BadKey);
    }

    #[test]
    fn the_key_is_made_once_kept_0600_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let first = key(dir.path(), "limb");
        let again = key(dir.path(), "limb");
        assert_eq!(first.public(), again.public(), "the same key on the next start");
        let path = dir.path().join("limb.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let secret = std::fs::read_to_string(&path).unwrap();
        assert!(!format!("{first:?}").contains(secret.trim()), "Debug shows the public half only");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(LimbKey::beside(&dir.path().join("limb.token")), Err(ProvenanceError::KeyMalformed { .. })));
    }
}
