//! Which legacy tables and fields become what: a TOML file a person writes,
//! checked whole when it is read. [`DEFAULT`] is the shape an Actix +
//! SurrealDB agent backend has; `default-mapping.toml` documents each key.

use crate::MigrateError;
use std::collections::BTreeMap;

/// The default mapping, as shipped (`heiwa migrate surrealdb --print-mapping`).
pub const DEFAULT: &str = include_str!("../default-mapping.toml");

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub tenants: TenantMap,
    pub members: MemberMap,
    pub tasks: TaskMap,
    pub documents: Option<DocumentMap>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantMap {
    pub table: String,
    pub name: String,
    pub created_at: String,
    pub owner: Option<String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberMap {
    pub table: String,
    pub tenant: String,
    pub label: String,
    pub role: Option<String>,
    pub default_role: Option<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskMap {
    pub table: String,
    pub tenant: String,
    pub payload: String,
    pub state: String,
    pub created_at: String,
    pub submitter: Option<String>,
    pub model: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub finished_at: Option<String>,
    pub states: BTreeMap<String, String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentMap {
    pub table: String,
    pub tenant: String,
    pub content: String,
    pub file_name: Option<String>,
}

impl Mapping {
    /// Read and check a mapping; `path` only names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, MigrateError> {
        let bad = |reason: String| MigrateError::Mapping { path: path.into(), reason };
        let mapping: Mapping = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        for (legacy, role) in &mapping.members.roles {
            hub_rules::migration::MigratedRole::parse(role).map_err(|e| bad(format!("members.roles.{legacy}: {e}")))?;
        }
        if let Some(role) = &mapping.members.default_role {
            hub_rules::migration::MigratedRole::parse(role).map_err(|e| bad(format!("members.default_role: {e}")))?;
        }
        if mapping.members.role.is_none() && mapping.members.default_role.is_none() {
            return Err(bad("members: give a `role` field, a `default_role`, or both".into()));
        }
        for (legacy, state) in &mapping.tasks.states {
            hub_rules::migration::migrated_state(state).map_err(|e| bad(format!("tasks.states.{legacy}: {e}")))?;
        }
        let mut tables = vec![&mapping.tenants.table, &mapping.members.table, &mapping.tasks.table];
        tables.extend(mapping.documents.as_ref().map(|d| &d.table));
        for (i, table) in tables.iter().enumerate() {
            if table.is_empty() || tables[..i].contains(table) {
                return Err(bad(format!("table {table:?} is empty or mapped twice")));
            }
        }
        Ok(mapping)
    }

    pub fn default_mapping() -> Self {
        Self::parse(DEFAULT, "the default mapping").expect("the shipped mapping is valid")
    }

    /// The legacy tables in the order they are read and migrated: a record's
    /// references point to tables before its own.
    pub fn tables(&self) -> Vec<String> {
        let mut tables = vec![self.tenants.table.clone(), self.members.table.clone(), self.tasks.table.clone()];
        tables.extend(self.documents.as_ref().map(|d| d.table.clone()));
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mapping_is_valid_and_ordered() {
        let mapping = Mapping::default_mapping();
        assert_eq!(mapping.tables(), ["organization", "user", "task", "document"]);
        assert_eq!(mapping.tasks.states["running"], "pending");
    }

    #[test]
    fn the_documented_example_is_valid() {
        let example = include_str!("../../../docs/examples/migrate-mapping.toml");
        let mapping = Mapping::parse(example, "docs/examples/migrate-mapping.toml").unwrap();
        assert_eq!(mapping.tables(), ["workspace", "account", "job", "note"]);
        assert_eq!(mapping.members.default_role.as_deref(), Some("submitter"));
    }

    #[test]
    fn mistakes_are_named() {
        let wrong_role = DEFAULT.replace("viewer = \"reader\"", "viewer = \"limb\"");
        let error = Mapping::parse(&wrong_role, "m.toml").unwrap_err().to_string();
        assert!(error.contains("members.roles.viewer") && error.contains("m.toml"), "{error}");
        let claimed = DEFAULT.replace("running = \"pending\"", "running = \"claimed\"");
        assert!(Mapping::parse(&claimed, "m.toml").unwrap_err().to_string().contains("tasks.states.running"));
        let typo = DEFAULT.replace("payload = \"prompt\"", "paylod = \"prompt\"");
        assert!(Mapping::parse(&typo, "m.toml").unwrap_err().to_string().contains("paylod"));
        let twice = DEFAULT.replace("table = \"task\"", "table = \"user\"");
        assert!(Mapping::parse(&twice, "m.toml").unwrap_err().to_string().contains("mapped twice"));
    }
}
