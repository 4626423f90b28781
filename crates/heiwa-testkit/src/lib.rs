//! What the real-part tests (`crates/heiwa/tests`) and the benchmarks
//! (`crates/heiwa/benches`) share, so that each starts a hub, publishes the
//! module and lifts its limits the same way: [`TestHub`], the in-process
//! limbs of the trust tests ([`trust_limbs`]), a process's peak memory
//! ([`resident`]), Ctrl-C for a child as at a terminal ([`signals`]) and a
//! model mirror on loopback ([`nginx`]).
//! Never shipped (`publish = false`), never a dependency of anything but
//! tests and benches.

mod hub;
pub mod nginx;
pub mod resident;
pub mod signals;
pub mod trust_limbs;

pub use hub::{parts, TestHub, DATABASE};
