//! Claim codes: made here, from the operating system's CSPRNG, never by the
//! hub (its generator is seeded by the call's timestamp, so one code of a
//! batch would give away the others). The hub keeps each code's SHA-256;
//! the codes themselves live in a journal beside the claims CSV (0600),
//! appended and synced *before* their hashes are sent, so a run killed at
//! any point has lost none that the hub holds. The export matches the hub's
//! hashes against the journal; an unclaimed user whose code is not in it (a
//! journal gone, a hub migrated by an older heiwa whose codes could be
//! guessed) gets a fresh code through the admin's `reissue_claims`.

use crate::plan::Planned;
use crate::MigrateError;
use heiwa_hub::InviteCode;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

pub struct ClaimJournal {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    legacy_id: String,
    code: String,
}

impl ClaimJournal {
    /// The journal kept beside the claims CSV at `claims`.
    pub fn beside(claims: &Path) -> ClaimJournal {
        let mut name = claims.file_name().unwrap_or_default().to_os_string();
        name.push(".codes");
        ClaimJournal { path: claims.with_file_name(name) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Give each member of `batch` a fresh code (its hash goes to the hub),
    /// journaled before this returns.
    pub fn assign(&self, batch: &mut [Planned]) -> Result<(), MigrateError> {
        let mut made = Vec::new();
        for record in batch.iter_mut() {
            if let Planned::Member(member) = record {
                let code = InviteCode::fresh()?;
                member.code_hash = code.hash();
                made.push((member.legacy_id.clone(), code));
            }
        }
        self.record(&made)
    }

    /// Append `codes` and sync them to disk.
    pub fn record(&self, codes: &[(String, InviteCode)]) -> Result<(), MigrateError> {
        use std::os::unix::fs::OpenOptionsExt;
        if codes.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        // A line torn by a crash mid-write must not swallow the next entry:
        // every write starts on a line of its own (blank lines are skipped).
        let mut text = String::from("\n");
        for (legacy_id, code) in codes {
            let entry = Entry { legacy_id: legacy_id.clone(), code: code.0.clone() };
            text.push_str(&serde_json::to_string(&entry).expect("strings serialize"));
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(())
    }

    /// Every code journaled so far, by its hash (what the hub stores). A
    /// line cut short by a crash mid-write is skipped: its hash never left.
    pub fn by_hash(&self) -> Result<HashMap<String, String>, MigrateError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(e.into()),
        };
        let mut codes = HashMap::new();
        for line in std::io::BufReader::new(file).lines() {
            if let Ok(entry) = serde_json::from_str::<Entry>(&line?) {
                codes.insert(hub_rules::secrets::code_hash(&entry.code), entry.code);
            }
        }
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::MigratedMember;

    fn member(id: &str) -> Planned {
        Planned::Member(MigratedMember {
            legacy_id: id.into(),
            tenant_legacy_id: "organization:a".into(),
            role: "reader".into(),
            label: id.into(),
            code_hash: String::new(),
        })
    }

    #[test]
    fn codes_are_journaled_before_their_hashes_leave_and_found_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let journal = ClaimJournal::beside(&dir.path().join("claims.csv"));
        assert_eq!(journal.path(), dir.path().join("claims.csv.codes"));
        let mut batch = vec![member("user:a"), member("user:b")];
        journal.assign(&mut batch).unwrap();
        let hashes: Vec<String> = batch
            .iter()
            .map(|r| match r {
                Planned::Member(m) => m.code_hash.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_ne!(hashes[0], hashes[1], "each user has a code of its own");
        // A crash mid-line leaves a torn last line: skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap()
            .write_all(b"{\"legacy_id\":\"us")
            .unwrap();
        let known = journal.by_hash().unwrap();
        assert_eq!(known.len(), 2);
        for hash in &hashes {
            let code = &known[hash];
            assert_eq!(code.len(), 32, "128 bits in hex");
            assert_eq!(&hub_rules::secrets::code_hash(code), hash);
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(journal.path()).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
