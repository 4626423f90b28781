use super::HubError;
use std::path::Path;

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
        if !status.is_success() {
            return Err(HubError::Refused { what: what.into(), status: status.as_u16(), body });
        }
        Ok(body)
    }

    /// A fresh identity and the token that proves it.
    pub async fn new_identity(&self) -> Result<NewIdentity, HubError> {
        let body = self.send("new identity", self.client.post(format!("{}/v1/identity", self.base))).await?;
        serde_json::from_str(&body).map_err(|e| HubError::Refused {
            what: "new identity".into(),
            status: 200,
            body: format!("unexpected reply ({e}): {body}"),
        })
    }

    /// The identity token kept at `path`, or a fresh identity whose token is
    /// saved there (0600) for next time.
    pub async fn identity_token(&self, path: &Path) -> Result<String, HubError> {
        if let Ok(token) = std::fs::read_to_string(path) {
            return Ok(token.trim().to_string());
        }
        let identity = self.new_identity().await?;
        crate::config::write_secret(path, &identity.token)?;
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
        self.send("publish", request).await.map(drop)
    }

    /// Run SQL as `token`'s identity; row-level security applies to non-owners.
    pub async fn sql(&self, name: &str, query: &str, token: &str) -> Result<serde_json::Value, HubError> {
        let request = self
            .client
            .post(format!("{}/v1/database/{name}/sql", self.base))
            .bearer_auth(token)
            .body(query.to_string());
        let body = self.send("sql", request).await?;
        serde_json::from_str(&body).map_err(|e| HubError::Refused {
            what: "sql".into(),
            status: 200,
            body: format!("unexpected reply ({e}): {body}"),
        })
    }

    /// Call a reducer with JSON arguments; a reducer's `Err` comes back as `Refused`.
    pub async fn call(&self, name: &str, reducer: &str, args: serde_json::Value, token: &str) -> Result<(), HubError> {
        let request = self
            .client
            .post(format!("{}/v1/database/{name}/call/{reducer}", self.base))
            .bearer_auth(token)
            .json(&args);
        self.send(reducer, request).await.map(drop)
    }
}
