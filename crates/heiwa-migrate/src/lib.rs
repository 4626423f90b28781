//! The cutover from a legacy SurrealDB deployment (`heiwa migrate surrealdb`).
//!
//! SurrealDB is read by SurrealDB itself: a small Python program on its
//! official package ([`source`]), whose wheel carries SurrealDB's engine, so
//! an embedded database file or a live server is read without a SurrealQL
//! parser of ours and without compiling SurrealDB into heiwa (a many-minute
//! Rust build). Everything else is here: a [`mapping`] (TOML) says which
//! legacy tables and fields become tenants, members, tasks and documents; the
//! [`plan`] checks each record by the hub's own rules and names the bad ones;
//! [`target`] writes batches through the hub's admin-only `migrate_*`
//! reducers (one transaction each, idempotent by legacy id), so a rerun after
//! a crash adds only what is missing; documents go into this machine's memory
//! ([`documents`]), never to the hub; [`verify`] compares both sides. Claim
//! codes are made here, not by the hub, and journaled before their hashes
//! are sent ([`claims`]).

pub mod cbor;
pub mod claims;
pub mod documents;
pub mod mapping;
pub mod plan;
pub mod run;
pub mod source;
pub mod target;
pub mod verify;

pub use mapping::Mapping;
pub use plan::{Kind, Planned, Problem};
pub use run::{migrate, Event, Options, Report};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("mapping {path}: {reason}")]
    Mapping { path: String, reason: String },
    #[error(
        "cannot start the SurrealDB reader with {python} ({source}): give --python (or HEIWA_MIGRATE_PYTHON) a \
         Python with `pip install surrealdb==2.0.0` done"
    )]
    ReaderStart {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the SurrealDB reader failed: {0}")]
    Reader(String),
    #[error(
        "only the hub's admin (who published it) can migrate, and this identity is not it \
         (or the hub runs a hub-module older than the cutover)"
    )]
    NotAdmin,
    #[error("--documents-for {0}: no such organization is migrated (see the problems above, or the ids in the claim codes' CSV)")]
    NoSuchOrganization(String),
    #[error("documents are stored in this limb's memory, which was not opened")]
    NoMemory,
    #[error(transparent)]
    Hub(#[from] heiwa_hub::HubError),
    #[error(transparent)]
    Memory(#[from] heiwa_memory::MemoryError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("writing the claim codes: {0}")]
    Csv(#[from] csv::Error),
}
