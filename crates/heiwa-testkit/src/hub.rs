//! A local hub as a test or a benchmark needs it: started on a free loopback
//! port, the module published, the policy `heiwa hub up` sets on loopback
//! (anyone creates a tenant), and the publisher's (the admin's) token kept.

use heiwa_config::{free_loopback_port, Parts};
use heiwa_hub::{HubHttp, HubLimits, HubPolicy, HubServer, HubServerConfig};
use hub_rules::secrets::TenantCreation;
use std::path::{Path, PathBuf};

/// The database the module is published as.
pub const DATABASE: &str = "heiwa";

/// Every part, from the `HEIWA_*` variables `scripts/lib/env.sh` sets; a
/// missing one fails the test with the variable that should name it.
/// A module older than its sources fails too: `cargo test` and `cargo bench`
/// do not rebuild it, and a benchmark run by hand after a change to the hub
/// would publish and measure the old module.
pub fn parts() -> Parts {
    let parts = Parts::find(None).unwrap_or_else(|missing| panic!("{missing}"));
    if let Some(source) = newer_module_source(&parts.hub_wasm) {
        panic!(
            "{} is older than {}: rebuild the hub module first \
             (`source scripts/lib/env.sh && source scripts/lib/hub.sh && build_hub_module`)",
            parts.hub_wasm.display(),
            source.display()
        );
    }
    parts
}

/// A source file of the hub module (its crate and `hub-rules`) changed after
/// `wasm` was built from this checkout; none where `wasm` is another build.
fn newer_module_source(wasm: &Path) -> Option<PathBuf> {
    if !wasm.starts_with(std::env::var_os("HEIWA_CACHE")?) {
        return None;
    }
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    let built = modified(wasm)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    ["hub-module/src", "crates/hub-rules/src"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir)).ok())
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|source| modified(source).is_some_and(|changed| changed > built))
}

/// A running local hub with the module published.
pub struct TestHub {
    pub server: HubServer,
    pub http: HubHttp,
    /// How it was started: a test restarts it on the same data with this.
    pub config: HubServerConfig,
    /// The publisher's token: the hub's admin.
    pub admin: String,
}

impl TestHub {
    /// Start a hub with its data in `dir`, publish the module as [`DATABASE`]
    /// and let anyone create a tenant.
    pub async fn start(parts: &Parts, dir: &Path) -> TestHub {
        Self::start_with(parts, dir, &[DATABASE]).await
    }

    /// [`TestHub::start`], the module published under each of `databases`
    /// (the policy is set on the first).
    pub async fn start_with(parts: &Parts, dir: &Path, databases: &[&str]) -> TestHub {
        let listen = format!("127.0.0.1:{}", free_loopback_port().unwrap()).parse().unwrap();
        let config = HubServerConfig { binary: parts.spacetimedb_bin.clone(), data_dir: dir.into(), listen };
        let server = HubServer::start(&config).expect("the hub server starts");
        let http = HubHttp::new(server.http_url());
        let admin = http.new_identity().await.expect("the hub makes an identity").token;
        for database in databases {
            http.publish(database, &parts.hub_wasm, &admin).await.expect("hub-module publishes");
        }
        let open = HubPolicy::with_tenant_creation(TenantCreation::Anyone);
        http.set_policy(databases[0], &open, &admin).await.expect("the publisher sets its hub's policy");
        TestHub { server, http, config, admin }
    }

    /// Lift the per-tenant quotas to `up_to` open tasks and submits a second:
    /// tests and benchmarks submit thousands at once (the quota test sets its own).
    pub async fn lift_limits(&self, up_to: u32) {
        let defaults = self.http.limits(DATABASE, &self.admin).await.expect("anyone reads the hub's limits");
        let lifted = HubLimits { max_open_tasks: up_to, submits_per_sec: up_to, submit_burst: up_to, ..defaults };
        self.http.configure(DATABASE, &lifted, &self.admin).await.expect("the publisher configures its hub");
    }
}
