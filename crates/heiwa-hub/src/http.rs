//! The hub's HTTP API: identities, publishing the module, calling reducers and
//! SQL queries, with SpacetimeDB's JSON made readable.

use crate::args::*;
use crate::bindings::Role;
use crate::{generate_payload, HubError, QuorumState, TaskState};
use hub_rules::catalogue::ModelState;
use hub_rules::credit::CreditKind;
use serde_json::{json, Map, Value};
use std::path::Path;

/// One row of a SQL reply, its columns by name, with SpacetimeDB's JSON made
/// readable: a task's `state` by name, an option as its value or null, a
/// one-field product (a timestamp, an identity) as its field.
pub type Row = Map<String, Value>;

/// What an invite makes of whoever joins with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteRole {
    /// A volunteer's machine: runs what the hub assigns it and sees only that.
    Limb,
    /// A dashboard or bot: reads the tenant and submits tasks.
    Submitter,
}

impl InviteRole {
    /// The hub's `Role` (the bindings' type) this invite admits as.
    fn role(self) -> Role {
        match self {
            InviteRole::Limb => Role::Limb,
            InviteRole::Submitter => Role::Submitter,
        }
    }
}

/// Who may create tenants on a hub, and how many wrong codes it takes (its admin sets them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct HubPolicy {
    /// admin, anyone or code (`hub_rules::secrets::TenantCreation`).
    pub tenant_creation: String,
    pub max_tenants: u32,
    pub failures_per_identity: u32,
    pub failures_hub_wide: u32,
    pub failure_window_secs: u32,
}

impl HubPolicy {
    /// The module's defaults, with who may create tenants.
    pub fn with_tenant_creation(policy: hub_rules::secrets::TenantCreation) -> HubPolicy {
        use hub_rules::secrets as s;
        HubPolicy {
            tenant_creation: policy.name().into(),
            max_tenants: s::DEFAULT_MAX_TENANTS,
            failures_per_identity: s::DEFAULT_FAILURES_PER_IDENTITY,
            failures_hub_wide: s::DEFAULT_FAILURES_HUB_WIDE,
            failure_window_secs: s::DEFAULT_FAILURE_WINDOW_SECS,
        }
    }
}

/// The hub's quotas and retention for every tenant (its admin sets them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct HubLimits {
    pub max_open_tasks: u32,
    pub submits_per_sec: u32,
    pub submit_burst: u32,
    pub retain_secs: u64,
    pub prune_every_secs: u64,
}

/// An invite code a new limb or submitter joins with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct InviteCode(pub String);

impl InviteCode {
    /// A new code: 128 bits from the operating system's CSPRNG, in hex. The
    /// hub makes none (its generator is seeded by the call's timestamp).
    pub fn fresh() -> Result<InviteCode, HubError> {
        os_random_hex::<{ hub_rules::secrets::CODE_BYTES }>().map(InviteCode)
    }

    /// What the hub stores instead of the code.
    pub fn hash(&self) -> String {
        hub_rules::secrets::code_hash(&self.0)
    }
}

/// `N` bytes from the operating system's CSPRNG, in hex.
fn os_random_hex<const N: usize>() -> Result<String, HubError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| HubError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

impl std::fmt::Display for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hub's HTTP API: enough to publish the module and query it without the CLI.
#[derive(Clone)]
pub struct HubHttp {
    base: String,
    client: reqwest::Client,
}

#[derive(Debug, serde::Deserialize)]
pub struct NewIdentity {
    pub identity: String,
    pub token: String,
}

impl HubHttp {
    pub fn new(base: impl Into<String>) -> Self {
        HubHttp { base: base.into(), client: reqwest::Client::new() }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Result<String, HubError> {
        let url = format!("{} ({what})", self.base);
        let response = request.send().await.map_err(|source| HubError::Http { url: url.clone(), source })?;
        let status = response.status();
        let body = response.text().await.map_err(|source| HubError::Http { url, source })?;
        // SpacetimeDB answers a reducer's own `Err` with 530 and its message.
        if status.as_u16() == 530 {
            return Err(HubError::Reducer { reducer: what.into(), message: body });
        }
        if !status.is_success() {
            return Err(HubError::Refused { what: what.into(), status: status.as_u16(), body });
        }
        Ok(body)
    }

    /// A fresh identity and the token that proves it.
    pub async fn new_identity(&self) -> Result<NewIdentity, HubError> {
        let body = self.send("new identity", self.client.post(format!("{}/v1/identity", self.base))).await?;
        serde_json::from_str(&body)
            .map_err(|e| HubError::Malformed { what: "new identity".into(), reason: format!("{e}: {body}") })
    }

    /// The identity token kept at `path`, or a fresh identity whose token is
    /// saved there (0600) for next time.
    pub async fn identity_token(&self, path: &Path) -> Result<String, HubError> {
        if let Ok(token) = std::fs::read_to_string(path) {
            return Ok(token.trim().to_string());
        }
        let identity = self.new_identity().await?;
        heiwa_config::write_secret(path, &identity.token)?;
        Ok(identity.token)
    }

    /// Publish (or update) the module as database `name`, owned by `token`'s identity.
    pub async fn publish(&self, name: &str, wasm: &Path, token: &str) -> Result<(), HubError> {
        if !wasm.is_file() {
            return Err(HubError::ModuleMissing(wasm.to_path_buf()));
        }
        let bytes = tokio::fs::read(wasm).await?;
        let request = self
            .client
            .put(format!("{}/v1/database/{name}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(bytes);
        match self.send("publish", request).await {
            // SpacetimeDB migrates a database in place only by adding; a module
            // whose tables changed otherwise is refused, and the data stays as it was.
            Err(HubError::Refused { status: 400, body, .. }) if body.starts_with("Database update rejected") => {
                return Err(HubError::SchemaChanged { database: name.into(), detail: body })
            }
            other => other.map(drop)?,
        }
        // The spot-check key, from this machine's CSPRNG: the hub keeps the
        // first it is given, so a republish changes nothing.
        let key = os_random_hex::<{ hub_rules::secrets::SPOT_CHECK_KEY_BYTES }>()?;
        self.call_reducer(name, &SetSpotCheckKey { key_hex: key }, token).await
    }

    /// Who may create tenants on the hub, and the limits on wrong codes (its admin only).
    pub async fn set_policy(&self, name: &str, policy: &HubPolicy, token: &str) -> Result<(), HubError> {
        let HubPolicy { tenant_creation, max_tenants, failures_per_identity, failures_hub_wide, failure_window_secs } =
            policy;
        let args = SetHubPolicy {
            tenant_creation: tenant_creation.clone(),
            max_tenants: *max_tenants,
            failures_per_identity: *failures_per_identity,
            failures_hub_wide: *failures_hub_wide,
            failure_window_secs: *failure_window_secs,
        };
        self.call_reducer(name, &args, token).await
    }

    /// The hub's policy (anyone may read it).
    pub async fn policy(&self, name: &str, token: &str) -> Result<HubPolicy, HubError> {
        let rows = self.rows_as::<HubPolicy>(name, "SELECT * FROM hub_policy", token).await?;
        rows.into_iter().next().ok_or_else(|| HubError::Malformed {
            what: "hub_policy".into(),
            reason: "the hub has no policy row (published by an older heiwa: its defaults apply)".into(),
        })
    }

    /// Run SQL as `token`'s identity; row-level security applies to non-owners.
    /// On a table with several row-level-security rules (task, task_result,
    /// limb), SpacetimeDB 1.2 refuses a projection of two or more columns
    /// ("Could not compute positional arguments"): select `*` and read the
    /// columns wanted ([`HubHttp::rows_as`] ignores the rest).
    pub async fn sql(&self, name: &str, query: &str, token: &str) -> Result<serde_json::Value, HubError> {
        let request = self
            .client
            .post(format!("{}/v1/database/{name}/sql", self.base))
            .bearer_auth(token)
            .body(query.to_string());
        let body = self.send("sql", request).await?;
        serde_json::from_str(&body)
            .map_err(|e| HubError::Malformed { what: "sql".into(), reason: format!("{e}: {body}") })
    }

    /// Call a reducer with JSON arguments; a reducer's `Err` comes back as `Refused`.
    pub async fn call(&self, name: &str, reducer: &str, args: serde_json::Value, token: &str) -> Result<(), HubError> {
        self.call_json(name, reducer, args.to_string(), token).await
    }

    /// Call the reducer `args` is for, its arguments by name in the hub's JSON.
    pub(crate) async fn call_reducer<A: ReducerArgs>(&self, name: &str, args: &A, token: &str) -> Result<(), HubError> {
        self.call_json(name, A::REDUCER, hub_json(args), token).await
    }

    /// [`HubHttp::call`] with the arguments already written as JSON text (a
    /// large batch is then serialized once, by whoever measured its size).
    pub async fn call_json(&self, name: &str, reducer: &str, args: String, token: &str) -> Result<(), HubError> {
        let request = self
            .client
            .post(format!("{}/v1/database/{name}/call/{reducer}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(args);
        self.send(reducer, request).await.map(drop)
    }

    /// The rows `query` returns, columns by name (see [`Row`]).
    pub async fn rows(&self, name: &str, query: &str, token: &str) -> Result<Vec<Row>, HubError> {
        Ok(named_rows(&self.sql(name, query, token).await?))
    }

    /// The rows `query` returns, each read as a `T` by column name.
    pub async fn rows_as<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        query: &str,
        token: &str,
    ) -> Result<Vec<T>, HubError> {
        self.rows(name, query, token)
            .await?
            .into_iter()
            .map(|row| {
                // Which columns were null says where a reply went wrong; their values stay out (they may be secret).
                let nulls: Vec<String> = row.iter().filter(|(_, v)| v.is_null()).map(|(k, _)| k.clone()).collect();
                serde_json::from_value(Value::Object(row)).map_err(|e| HubError::Malformed {
                    what: query.into(),
                    reason: format!(
                        "{e} (null in that row: {})",
                        if nulls.is_empty() { "none".into() } else { nulls.join(", ") }
                    ),
                })
            })
            .collect()
    }

    pub async fn create_tenant(&self, name: &str, tenant: &str, token: &str) -> Result<(), HubError> {
        self.call_reducer(name, &CreateTenant { name: tenant.into() }, token).await
    }

    /// Create a tenant with a code from the hub's admin ([`HubHttp::create_tenant_code`]).
    pub async fn create_tenant_with_code(
        &self,
        name: &str,
        tenant: &str,
        code: &str,
        token: &str,
    ) -> Result<(), HubError> {
        self.redeem(name, &CreateTenantWithCode { name: tenant.into(), code: code.trim().into() }, token).await
    }

    /// A code for `uses` tenants, valid for `ttl_secs` (the hub's admin only).
    pub async fn create_tenant_code(
        &self,
        name: &str,
        uses: u32,
        ttl_secs: u32,
        token: &str,
    ) -> Result<InviteCode, HubError> {
        self.new_code(name, |code_hash| CreateTenantCode { code_hash, uses, ttl_secs }, token).await
    }

    /// A new invite for `uses` limbs or submitters, valid for `ttl_secs`
    /// (the owner's or an operator's).
    pub async fn create_invite(
        &self,
        name: &str,
        uses: u32,
        ttl_secs: u32,
        role: InviteRole,
        token: &str,
    ) -> Result<InviteCode, HubError> {
        self.new_code(name, |code_hash| CreateInvite { code_hash, uses, ttl_secs, role: role.role() }, token).await
    }

    /// A one-use code for one browser to sign into the web dashboard
    /// (read-only unless `submits`).
    pub async fn create_browser_invite(
        &self,
        name: &str,
        submits: bool,
        label: &str,
        ttl_secs: u32,
        token: &str,
    ) -> Result<InviteCode, HubError> {
        let label = label.to_string();
        self.new_code(name, |code_hash| CreateBrowserInvite { code_hash, submits, label, ttl_secs }, token).await
    }

    /// A one-use code for an operator (the admin bot) to join the tenant with.
    pub async fn create_operator_invite(
        &self,
        name: &str,
        label: &str,
        ttl_secs: u32,
        token: &str,
    ) -> Result<InviteCode, HubError> {
        let label = label.to_string();
        self.new_code(name, |code_hash| CreateOperatorInvite { code_hash, label, ttl_secs }, token).await
    }

    /// Make a code here and call `reducer` with `args(its hash)`: the hub
    /// keeps only the hash, and the code is returned to be handed on.
    async fn new_code<A: ReducerArgs>(
        &self,
        name: &str,
        args: impl FnOnce(String) -> A,
        token: &str,
    ) -> Result<InviteCode, HubError> {
        let code = InviteCode::fresh()?;
        self.call_reducer(name, &args(code.hash()), token).await?;
        Ok(code)
    }

    /// Present a code to `reducer` (a join, a claim, a tenant made with a
    /// code). A refused code is counted by the hub, so its reducer commits
    /// and returns no error: whether it worked is read back (the caller is
    /// then a member), and if not, why (its `code_attempt` row).
    async fn redeem<A: ReducerArgs>(&self, name: &str, args: &A, token: &str) -> Result<(), HubError> {
        #[derive(serde::Deserialize)]
        struct Attempt {
            refusal: String,
        }
        self.call_reducer(name, args, token).await?;
        if self.own_identity(name, token).await?.is_some() {
            return Ok(());
        }
        let refusal = self.rows_as::<Attempt>(name, "SELECT * FROM code_attempt", token).await?;
        let message = refusal.into_iter().next().map_or_else(|| "the code was refused".into(), |row| row.refusal);
        Err(HubError::Reducer { reducer: A::REDUCER.into(), message })
    }

    /// The identity `token` stands for (hex), if it is a member of a tenant:
    /// row-level security shows a caller its own `member` row only.
    pub async fn own_identity(&self, name: &str, token: &str) -> Result<Option<String>, HubError> {
        #[derive(serde::Deserialize)]
        struct Me {
            #[serde(deserialize_with = "identity_hex")]
            identity: String,
        }
        Ok(self.rows_as::<Me>(name, "SELECT * FROM member", token).await?.into_iter().next().map(|me| me.identity))
    }

    /// Whether `identity` (hex) is an operator of the caller's tenant.
    pub async fn is_operator(&self, name: &str, identity: &str, token: &str) -> Result<bool, HubError> {
        #[derive(serde::Deserialize)]
        struct Operator {
            #[serde(deserialize_with = "identity_hex")]
            identity: String,
        }
        let operators = self.rows_as::<Operator>(name, "SELECT * FROM operator", token).await?;
        Ok(operators.iter().any(|op| op.identity == identity))
    }

    /// Join the tenant as its operator with a code from [`HubHttp::create_operator_invite`].
    pub async fn join_operator(&self, name: &str, code: &str, token: &str) -> Result<(), HubError> {
        self.redeem(name, &JoinOperator { code: code.trim().into() }, token).await
    }

    /// Join the tenant with an invite code ([`HubHttp::create_invite`]).
    pub async fn join_tenant(&self, name: &str, code: &str, token: &str) -> Result<(), HubError> {
        self.redeem(name, &JoinTenant { code: code.trim().into() }, token).await
    }

    /// Sign into a tenant as a migrated user, with a claim code from `heiwa migrate`.
    pub async fn claim_legacy(&self, name: &str, code: &str, token: &str) -> Result<(), HubError> {
        self.redeem(name, &ClaimLegacy { code: code.trim().into() }, token).await
    }

    /// Pause (or resume) one of the tenant's limbs: the owner or an operator.
    pub async fn pause_limb(
        &self,
        name: &str,
        limb_id: u64,
        paused: bool,
        reason: &str,
        token: &str,
    ) -> Result<(), HubError> {
        self.call_reducer(name, &PauseLimb { limb_id, paused, reason: reason.into() }, token).await
    }

    /// The browsers signed into the caller's tenant.
    pub async fn browsers(&self, name: &str, token: &str) -> Result<Vec<BrowserRow>, HubError> {
        self.rows_as::<BrowserRow>(name, "SELECT * FROM browser", token).await
    }

    /// Take a browser's access back (the owner only); `identity` is its hex identity.
    pub async fn revoke_browser(&self, name: &str, identity: &str, token: &str) -> Result<(), HubError> {
        self.call_reducer(name, &RevokeBrowser { browser: parse_identity(identity)? }, token).await
    }

    /// The operators (admin bots) of the caller's tenant.
    pub async fn operators(&self, name: &str, token: &str) -> Result<Vec<OperatorRow>, HubError> {
        self.rows_as::<OperatorRow>(name, "SELECT * FROM operator", token).await
    }

    /// Take an operator's access back (the owner only); `identity` is its hex identity.
    pub async fn revoke_operator(&self, name: &str, identity: &str, token: &str) -> Result<(), HubError> {
        self.call_reducer(name, &RevokeOperator { operator: parse_identity(identity)? }, token).await
    }

    /// Submit a task; `model` pins it to limbs that offer that model (by id or sha256).
    pub async fn submit_task(
        &self,
        name: &str,
        payload: &str,
        model: Option<&str>,
        token: &str,
    ) -> Result<(), HubError> {
        let args = SubmitTask { payload: payload.into(), model: model.unwrap_or_default().into() };
        self.call_reducer(name, &args, token).await
    }

    /// Submit a task at most once per `key` in the tenant: sending the same
    /// key again (after no answer, or after the hub restarted) changes nothing.
    pub async fn submit_task_once(
        &self,
        name: &str,
        key: &str,
        payload: &str,
        model: Option<&str>,
        token: &str,
    ) -> Result<(), HubError> {
        let args = SubmitTaskOnce { key: key.into(), payload: payload.into(), model: model.unwrap_or_default().into() };
        self.call_reducer(name, &args, token).await
    }

    /// Submit a task to be answered by `replicas` limbs of different donors
    /// and decided by their agreement; with `key`, at most once per key.
    pub async fn submit_task_replicated(
        &self,
        name: &str,
        key: Option<&str>,
        payload: &str,
        model: Option<&str>,
        replicas: u32,
        token: &str,
    ) -> Result<(), HubError> {
        let args = SubmitTaskReplicated {
            key: key.unwrap_or_default().into(),
            payload: payload.into(),
            model: model.unwrap_or_default().into(),
            replicas,
        };
        self.call_reducer(name, &args, token).await
    }

    /// Submit a greedy generation of `prompt` on `model`, checked by scoring
    /// on a limb of another donor; with `key`, at most once per key.
    pub async fn submit_task_scored(
        &self,
        name: &str,
        key: Option<&str>,
        prompt: &str,
        model: &str,
        token: &str,
    ) -> Result<(), HubError> {
        let args = SubmitTaskScored {
            key: key.unwrap_or_default().into(),
            payload: generate_payload(prompt),
            model: model.into(),
        };
        self.call_reducer(name, &args, token).await
    }

    /// The owner lets a limb read the whole tenant and/or submit (or takes it back).
    pub async fn grant_limb(
        &self,
        name: &str,
        limb_id: u64,
        reads_tenant: bool,
        submits: bool,
        token: &str,
    ) -> Result<(), HubError> {
        self.call_reducer(name, &GrantLimb { limb_id, reads_tenant, submits }, token).await
    }

    pub async fn limits(&self, name: &str, token: &str) -> Result<HubLimits, HubError> {
        let rows = self.rows_as::<HubLimits>(name, "SELECT * FROM hub_config", token).await?;
        rows.into_iter().next().ok_or_else(|| HubError::Malformed {
            what: "hub_config".into(),
            reason: "the hub has no configuration row".into(),
        })
    }

    /// Set the quotas and retention; only the hub's admin (its publisher) may.
    pub async fn configure(&self, name: &str, limits: &HubLimits, token: &str) -> Result<(), HubError> {
        let HubLimits { max_open_tasks, submits_per_sec, submit_burst, retain_secs, prune_every_secs } = *limits;
        let args = ConfigureHub { max_open_tasks, submits_per_sec, submit_burst, retain_secs, prune_every_secs };
        self.call_reducer(name, &args, token).await
    }

    pub async fn cancel_task(&self, name: &str, task_id: u64, token: &str) -> Result<(), HubError> {
        self.call_reducer(name, &CancelTask { task_id }, token).await
    }
}

/// A value of the hub's own types (the generated bindings) as its HTTP API
/// takes it: JSON, a struct as an object by field name.
pub fn hub_json<T: spacetimedb_sats::ser::Serialize>(value: &T) -> String {
    serde_json::to_string(&spacetimedb_sats::serde::SerdeWrapper(value)).expect("the hub's types are JSON")
}

/// A browser signed into the tenant's dashboard, as the owner lists it.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct BrowserRow {
    #[serde(deserialize_with = "identity_hex")]
    pub identity: String,
    pub label: String,
    pub submits: bool,
    pub joined_at: Value,
    pub last_connected: Value,
}

/// An operator of the tenant (the admin bot), as the owner lists it.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct OperatorRow {
    #[serde(deserialize_with = "identity_hex")]
    pub identity: String,
    pub label: String,
    pub joined_at: Value,
}

/// An identity as the SQL API writes it (`["0x…"]` or `{"__identity__": "0x…"}`), as bare hex.
/// An identity as a person writes it (hex, with or without `0x`).
fn parse_identity(hex: &str) -> Result<spacetimedb_lib::Identity, HubError> {
    spacetimedb_lib::Identity::from_hex(hex.trim().trim_start_matches("0x"))
        .map_err(|e| HubError::Malformed { what: format!("identity {hex}"), reason: e.to_string() })
}

fn identity_hex<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = <Value as serde::Deserialize>::deserialize(deserializer)?;
    let hex = match &value {
        Value::String(hex) => Some(hex.as_str()),
        Value::Array(items) => items.first().and_then(Value::as_str),
        Value::Object(fields) => fields.get("__identity__").and_then(Value::as_str),
        _ => None,
    };
    hex.map(|hex| hex.trim_start_matches("0x").to_string())
        .ok_or_else(|| serde::de::Error::custom(format!("not an identity: {value}")))
}

/// A reply's rows as objects named by its schema (see [`Row`]).
fn named_rows(reply: &Value) -> Vec<Row> {
    let columns: Vec<(String, bool)> = reply[0]["schema"]["elements"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|el| {
                    // An array column (`Vec<u64>`) is a plain JSON array, never a sum to unwrap.
                    let is_array = el["algebraic_type"].get("Array").is_some();
                    (el["name"]["some"].as_str().unwrap_or("?").to_string(), is_array)
                })
                .collect()
        })
        .unwrap_or_default();
    reply[0]["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            columns
                .iter()
                .zip(row.as_array().into_iter().flatten())
                .map(|((n, is_array), v)| (n.clone(), if *is_array { v.clone() } else { readable(n, v) }))
                .collect()
        })
        .collect()
}

/// SpacetimeDB's JSON for one column, made readable. A sum type is written
/// `[variant index, value]`; `Option` is the sum `some(x) | none`.
fn readable(name: &str, value: &Value) -> Value {
    match value {
        _ if name == "state" => {
            let index = value[0].as_u64().unwrap_or(u64::MAX);
            TaskState::ALL.get(index as usize).map_or(Value::Null, |state| json!(state.name()))
        }
        _ if name == "stage" => {
            let index = value[0].as_u64().unwrap_or(u64::MAX);
            ModelState::ALL.get(index as usize).map_or(Value::Null, |stage| json!(stage.name()))
        }
        // A credit row's kind is a sum; another table's `kind` (the cutover's) is a plain string.
        Value::Array(_) if name == "kind" => {
            let index = value[0].as_u64().unwrap_or(u64::MAX);
            CreditKind::ALL.get(index as usize).map_or(Value::Null, |kind| json!(kind.name()))
        }
        _ if name == "verdict" => {
            let index = value[0].as_u64().unwrap_or(u64::MAX);
            QuorumState::ALL.get(index as usize).map_or(Value::Null, |verdict| json!(verdict.name()))
        }
        Value::Array(items) if items.len() == 1 => items[0].clone(),
        Value::Array(items) if items.len() == 2 && (items[0] == 0 || items[0] == 1) => {
            let some = (items[0] == 0).then(|| &items[1]);
            some.map(|v| if v.as_array().map(Vec::len) == Some(1) { v[0].clone() } else { v.clone() })
                .unwrap_or(Value::Null)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape SpacetimeDB 1.2's `/sql` answers with; the real-part tests read real replies.
    #[test]
    fn rows_are_named_and_readable() {
        let reply = json!([{
            "schema": {"elements": [
                {"name": {"some": "id"}}, {"name": {"some": "state"}}, {"name": {"some": "assigned_to"}},
                {"name": {"some": "created_at"}}, {"name": {"some": "retried_at"}},
                {"name": {"some": "copies"}, "algebraic_type": {"Array": {"U64": []}}}
            ]},
            "rows": [[7, [2, []], [0, 3], [1700000000], [1, []], [1, 2]]]
        }]);
        let rows = named_rows(&reply);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["id"], 7);
        assert_eq!(rows[0]["state"], "done");
        assert_eq!(rows[0]["assigned_to"], 3);
        assert_eq!(rows[0]["created_at"], 1700000000);
        assert_eq!(rows[0]["retried_at"], Value::Null);
        assert_eq!(rows[0]["copies"], json!([1, 2]), "an array is not a sum");
    }

    #[test]
    fn an_unknown_state_is_null_not_a_guess() {
        assert_eq!(readable("state", &json!([99, []])), Value::Null);
    }
}
