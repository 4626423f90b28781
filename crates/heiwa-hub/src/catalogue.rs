//! A tenant's model catalogue over the hub's HTTP API: its owner (or an
//! operator) adds and removes models; readers see each limb's copy of each
//! model, and why a task pinned to a model waits.

use crate::args::{AddCatalogueModel, RemoveCatalogueModel};
use crate::{HubError, HubHttp};
use hub_rules::catalogue::{estimated_wait_secs, wait_estimate, why_waiting, Copy, ModelState};

/// A catalogue entry, as the owner gives it and the tenant's readers read it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct CatalogueRow {
    pub model_id: String,
    pub file: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub sources: Vec<String>,
    pub license: String,
    pub keep_ready: bool,
}

/// One limb's copy of a catalogue model (`stage` by its name: wanted, fetching, held, failed, no room).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ModelCopyRow {
    pub limb_id: u64,
    pub model_id: String,
    pub size_bytes: u64,
    pub stage: String,
    pub have: u64,
    pub reason: String,
}

impl ModelCopyRow {
    pub fn stage(&self) -> Option<ModelState> {
        ModelState::ALL.into_iter().find(|stage| stage.name() == self.stage)
    }
}

#[derive(serde::Deserialize)]
struct QueuedTask {
    id: u64,
    state: String,
    model: String,
}

#[derive(serde::Deserialize)]
struct Finished {
    limb_id: u64,
    finished_at: i64,
}

/// The pace a wait is estimated from: tasks finished in this window.
const PACE_WINDOW_SECS: u64 = 600;

/// How long a pending task may wait, as [`HubHttp::wait_estimate`] says it.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitEstimate {
    /// Older pending tasks the same limbs take first.
    pub ahead: usize,
    /// Seconds until it is done, at the recent pace (`None`: no pace to go by).
    pub secs: Option<f64>,
    /// All of it in words.
    pub text: String,
}

#[derive(serde::Deserialize)]
struct LimbOnline {
    id: u64,
    online: bool,
    /// Its offers (the SQL API writes each as `[id, sha256]`, which serde reads as the struct).
    models: Vec<hub_rules::ModelOffer>,
}

impl HubHttp {
    /// Add a model to the caller's tenant's catalogue (or replace the entry of the same id).
    pub async fn add_catalogue_model(&self, name: &str, model: &CatalogueRow, token: &str) -> Result<(), HubError> {
        let args = AddCatalogueModel {
            model_id: model.model_id.clone(),
            file: model.file.clone(),
            size_bytes: model.size_bytes,
            sha256: model.sha256.clone(),
            sources: model.sources.clone(),
            license: model.license.clone(),
            keep_ready: model.keep_ready,
        };
        self.call_reducer(name, &args, token).await
    }

    pub async fn remove_catalogue_model(&self, name: &str, model_id: &str, token: &str) -> Result<(), HubError> {
        self.call_reducer(name, &RemoveCatalogueModel { model_id: model_id.into() }, token).await
    }

    pub async fn catalogue(&self, name: &str, token: &str) -> Result<Vec<CatalogueRow>, HubError> {
        self.rows_as(name, "SELECT * FROM catalogue_model", token).await
    }

    /// Every limb's copy of every catalogue model of the caller's tenant.
    pub async fn model_copies(&self, name: &str, token: &str) -> Result<Vec<ModelCopyRow>, HubError> {
        self.rows_as(name, "SELECT * FROM tenant_model_copy", token).await
    }

    /// Why a pending task pinned to `model` waits, in words (`None`: a limb
    /// that holds it is online; the task waits only for a free slot).
    pub async fn why_waiting(&self, name: &str, model: &str, token: &str) -> Result<Option<String>, HubError> {
        if model.is_empty() {
            return Ok(None);
        }
        let catalogue = self.catalogue(name, token).await?;
        let entry = catalogue.iter().find(|e| e.model_id == model || e.sha256 == model);
        let limbs = self.rows_as::<LimbOnline>(name, "SELECT * FROM limb", token).await?;
        // A limb may offer a model it has of its own, in the catalogue or not.
        if limbs.iter().any(|limb| limb.online && hub_rules::offers(&limb.models, model)) {
            return Ok(None);
        }
        let online: std::collections::HashMap<u64, bool> = limbs.iter().map(|limb| (limb.id, limb.online)).collect();
        let copies: Vec<Copy> = match entry {
            Some(entry) => self
                .model_copies(name, token)
                .await?
                .iter()
                .filter(|copy| copy.model_id == entry.model_id)
                .filter_map(|copy| {
                    Some(Copy {
                        stage: copy.stage()?,
                        have: copy.have,
                        size_bytes: copy.size_bytes,
                        online: online.get(&copy.limb_id).copied().unwrap_or(false),
                        deferred: copy.stage == ModelState::Wanted.name() && !copy.reason.is_empty(),
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(why_waiting(model, entry.is_some(), &copies))
    }

    /// How long the pending task `task_id` (pinned to `model`, or not) may
    /// wait: the older pending tasks the same limbs would take first (pinned
    /// to the same model, or to none), at the pace the limbs that can run it
    /// finished tasks in the last ten minutes.
    pub async fn wait_estimate(
        &self,
        name: &str,
        task_id: u64,
        model: &str,
        token: &str,
    ) -> Result<WaitEstimate, HubError> {
        let competing = |other: &str| other.is_empty() || other == model;
        let ahead = self
            .rows_as::<QueuedTask>(name, "SELECT * FROM task", token)
            .await?
            .iter()
            .filter(|task| task.id < task_id && task.state == "pending" && competing(&task.model))
            .count();
        let limbs = self.rows_as::<LimbOnline>(name, "SELECT * FROM limb", token).await?;
        let able: std::collections::HashSet<u64> =
            limbs.iter().filter(|limb| hub_rules::offers(&limb.models, model)).map(|limb| limb.id).collect();
        let now_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as i64);
        let since = now_micros - (PACE_WINDOW_SECS * 1_000_000) as i64;
        let recent: Vec<i64> = self
            .rows_as::<Finished>(name, "SELECT * FROM task_result", token)
            .await?
            .iter()
            .filter(|result| result.finished_at >= since && able.contains(&result.limb_id))
            .map(|result| result.finished_at)
            .collect();
        // The pace over the span those results cover (limbs that started a minute ago have a minute's pace).
        let observed_secs = recent.iter().min().map_or(0.0, |first| (now_micros - first) as f64 / 1e6);
        Ok(WaitEstimate {
            ahead,
            secs: estimated_wait_secs(ahead, recent.len(), observed_secs),
            text: wait_estimate(ahead, recent.len(), observed_secs, PACE_WINDOW_SECS),
        })
    }
}
