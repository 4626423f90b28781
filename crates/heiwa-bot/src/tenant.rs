//! The tenant as the bot's hub identity (an operator) reads and steers it,
//! through the hub's HTTP API: the hub's row-level security decides what it
//! sees and its reducers what it may do, whatever the bot asks.

use heiwa_hub::{HubError, HubHttp, InviteCode, InviteRole, TaskState};
use serde::Deserialize;

/// A task with its result, as `tenant_task` holds it.
#[derive(Clone, Debug, Deserialize)]
pub struct TaskRow {
    pub id: u64,
    pub state: TaskState,
    pub payload: String,
    pub model: String,
    /// The limb holding it, or the one that answered it; 0: none.
    pub limb_id: u64,
    pub attempts: u32,
    pub reason: String,
    pub summary: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LimbRow {
    pub id: u64,
    pub name: String,
    pub capacity: u32,
    pub online: bool,
    pub gpu: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ControlRow {
    pub limb_id: u64,
    pub paused: bool,
    pub reason: String,
}

/// A limb and whether the tenant paused it (and why).
pub type LimbLine = (LimbRow, Option<String>);

pub struct Tenant {
    http: HubHttp,
    database: String,
    token: String,
    /// The bot's own identity (hex, no `0x`): its submissions are found by it.
    identity: String,
}

impl Tenant {
    pub fn new(http: HubHttp, database: String, token: String, identity: String) -> Tenant {
        let identity = identity.trim_start_matches("0x").to_string();
        Tenant { http, database, token, identity }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    async fn rows<T: serde::de::DeserializeOwned>(&self, query: &str) -> Result<Vec<T>, HubError> {
        self.http.rows_as(&self.database, query, &self.token).await
    }

    pub async fn tasks(&self) -> Result<Vec<TaskRow>, HubError> {
        self.rows("SELECT * FROM tenant_task").await
    }

    pub async fn task(&self, id: u64) -> Result<Option<TaskRow>, HubError> {
        Ok(self.rows(&format!("SELECT * FROM tenant_task WHERE id = {id}")).await?.into_iter().next())
    }

    /// Why a pending task waits (a model no online limb holds, and how its
    /// copies stand) and how long it may, as `heiwa task show` says it.
    pub async fn waiting(&self, task: &TaskRow) -> Result<Vec<String>, HubError> {
        let (database, token) = (&self.database, &self.token);
        let why = self.http.why_waiting(database, &task.model, token).await?;
        let estimate = self.http.wait_estimate(database, task.id, &task.model, token).await?;
        Ok(why.into_iter().chain([estimate.text]).collect())
    }

    /// The credit each limb was paid (milli-credits, by limb id), from the ledger.
    pub async fn credit(&self) -> Result<std::collections::HashMap<u64, u64>, HubError> {
        let lines = self.http.credit(&self.database, None, &self.token).await?;
        Ok(lines.into_iter().map(|line| (line.limb_id, line.all.milli)).collect())
    }

    pub async fn limbs(&self) -> Result<Vec<LimbLine>, HubError> {
        let controls: Vec<ControlRow> = self.rows("SELECT * FROM limb_control").await?;
        let mut limbs: Vec<LimbRow> = self.rows("SELECT * FROM limb").await?;
        limbs.sort_by_key(|limb| limb.id);
        Ok(limbs
            .into_iter()
            .map(|limb| {
                let paused = controls.iter().find(|c| c.limb_id == limb.id && c.paused).map(|c| c.reason.clone());
                (limb, paused)
            })
            .collect())
    }

    pub async fn limb_name(&self, id: u64) -> Option<String> {
        let rows: Vec<LimbRow> = self.rows(&format!("SELECT * FROM limb WHERE id = {id}")).await.ok()?;
        rows.into_iter().next().map(|limb| limb.name)
    }

    /// Submit under `key` (at most once per key: Discord's interaction id,
    /// so a request that arrives twice makes one task) and return its id.
    /// The hub's reducers return no ids: the caller submits one at a time,
    /// and the first task of the bot's identity newer than all before is it.
    pub async fn submit(&self, key: &str, text: &str, replicas: u32, model: Option<&str>) -> Result<u64, HubError> {
        let before = self.own_task_ids().await?.into_iter().max().unwrap_or(0);
        let db = &self.database;
        match replicas {
            1 => self.http.submit_task_once(db, key, text, model, &self.token).await?,
            n => self.http.submit_task_replicated(db, Some(key), text, model, n, &self.token).await?,
        }
        // The submitted task is inserted before any copy the hub makes of it.
        self.own_task_ids().await?.into_iter().filter(|id| *id > before).min().ok_or_else(|| HubError::Malformed {
            what: "submit_task".into(),
            reason: "the new task is not visible to its submitter".into(),
        })
    }

    async fn own_task_ids(&self) -> Result<Vec<u64>, HubError> {
        #[derive(Deserialize)]
        struct Id {
            id: u64,
        }
        let query = format!("SELECT * FROM tenant_task WHERE submitted_by = 0x{}", self.identity);
        Ok(self.rows::<Id>(&query).await?.into_iter().map(|task| task.id).collect())
    }

    pub async fn cancel(&self, id: u64) -> Result<(), HubError> {
        self.http.cancel_task(&self.database, id, &self.token).await
    }

    /// A one-use code for one new limb, valid for an hour.
    pub async fn invite_limb(&self) -> Result<InviteCode, HubError> {
        self.http.create_invite(&self.database, 1, 3600, InviteRole::Limb, &self.token).await
    }

    pub async fn pause(&self, limb: u64, paused: bool, reason: &str) -> Result<(), HubError> {
        self.http.pause_limb(&self.database, limb, paused, reason, &self.token).await
    }
}
