//! Each legacy record becomes what the mapping says, checked by the hub's own
//! rules (`hub_rules::migration`), or a [`Problem`] named by its legacy id.
//! Pure: no I/O, so every rule is tested here without SurrealDB or a hub.
//! Tables come in order (organizations, users, tasks, documents), so a
//! reference is checked against what was planned before it.

use crate::mapping::Mapping;
use crate::source::RawRecord;
use hub_rules::migration::{self, MigratedRole};
use hub_rules::TaskState;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// The largest legacy document taken into memory.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Tenant,
    Member,
    Task,
    Document,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Tenant, Kind::Member, Kind::Task, Kind::Document];

    /// As the reports say it, and as the hub's `legacy_record.kind` holds it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tenant => "tenant",
            Kind::Member => "member",
            Kind::Task => "task",
            Kind::Document => "document",
        }
    }
}

/// The records as the hub's `migrate_*` reducers take them: its own types,
/// from the generated bindings, so the two sides cannot drift apart.
pub use heiwa_hub::bindings::{MigratedMember, MigratedTask, MigratedTenant};

/// A legacy document, for a limb's memory (never the hub).
#[derive(Clone, Debug, PartialEq)]
pub struct LegacyDocument {
    pub legacy_id: String,
    pub tenant_legacy_id: String,
    /// Its file name when the mapping gives one: its type decides how it is extracted.
    pub file_name: Option<String>,
    pub content: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    Tenant(MigratedTenant),
    Member(MigratedMember),
    Task(MigratedTask),
    Document(LegacyDocument),
}

impl Planned {
    pub fn kind(&self) -> Kind {
        match self {
            Planned::Tenant(_) => Kind::Tenant,
            Planned::Member(_) => Kind::Member,
            Planned::Task(_) => Kind::Task,
            Planned::Document(_) => Kind::Document,
        }
    }

    pub fn legacy_id(&self) -> &str {
        match self {
            Planned::Tenant(t) => &t.legacy_id,
            Planned::Member(m) => &m.legacy_id,
            Planned::Task(t) => &t.legacy_id,
            Planned::Document(d) => &d.legacy_id,
        }
    }

    /// The record as the hub's reducer takes it (a JSON object by field name);
    /// `None` for a document, which never goes to the hub.
    pub fn hub_json(&self) -> Option<String> {
        match self {
            Planned::Tenant(t) => Some(heiwa_hub::hub_json(t)),
            Planned::Member(m) => Some(heiwa_hub::hub_json(m)),
            Planned::Task(t) => Some(heiwa_hub::hub_json(t)),
            Planned::Document(_) => None,
        }
    }

    /// What `--verify` compares for a hub record: the fields the hub keeps,
    /// hashed the way [`crate::verify`] hashes what it reads back.
    pub fn digest(&self) -> Option<String> {
        match self {
            Planned::Tenant(t) => Some(tenant_digest(&t.legacy_id, &t.name, t.created_at_micros)),
            Planned::Member(m) => Some(member_digest(&m.legacy_id, &m.tenant_legacy_id, &m.role, &m.label)),
            Planned::Task(t) => Some(task_digest(t)),
            Planned::Document(_) => None,
        }
    }
}

pub fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_of(fields: Value) -> String {
    hash_hex(fields.to_string().as_bytes())
}

pub fn tenant_digest(legacy_id: &str, name: &str, created_at_micros: i64) -> String {
    digest_of(serde_json::json!([legacy_id, name, created_at_micros]))
}

pub fn member_digest(legacy_id: &str, tenant: &str, role: &str, label: &str) -> String {
    digest_of(serde_json::json!([legacy_id, tenant, role, label]))
}

/// A task's digest: what it was asked, and how it ended if it had ended
/// (a pending one is answered on the hub after the cutover, which changes it).
pub fn task_digest(task: &MigratedTask) -> String {
    let outcome = match task.state.as_str() {
        "pending" => Value::Null,
        "done" => serde_json::json!(["done", task.summary, task.finished_at_micros]),
        other => serde_json::json!([other, task.reason]),
    };
    digest_of(serde_json::json!([
        task.legacy_id,
        task.tenant_legacy_id,
        task.submitter_legacy_id,
        task.payload,
        task.model,
        task.created_at_micros,
        outcome
    ]))
}

/// A legacy record that is not migrated, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub legacy_id: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.legacy_id, self.reason)
    }
}

/// Plans records in table order, remembering what the later tables may reference.
pub struct Planner {
    mapping: Mapping,
    tenants: HashSet<String>,
    /// Each organization's owner, as its `owner` field says.
    owner_of: HashMap<String, String>,
    /// Organizations whose owner is already planned.
    owned: HashSet<String>,
    /// Each planned user's organization.
    member_of: HashMap<String, String>,
}

impl Planner {
    pub fn new(mapping: Mapping) -> Self {
        Planner {
            mapping,
            tenants: HashSet::new(),
            owner_of: HashMap::new(),
            owned: HashSet::new(),
            member_of: HashMap::new(),
        }
    }

    /// Whether the organization `legacy_id` was planned (a tenant, not a problem).
    pub fn has_tenant(&self, legacy_id: &str) -> bool {
        self.tenants.contains(legacy_id)
    }

    pub fn kind_of(&self, table: &str) -> Option<Kind> {
        let m = &self.mapping;
        if table == m.tenants.table {
            Some(Kind::Tenant)
        } else if table == m.members.table {
            Some(Kind::Member)
        } else if table == m.tasks.table {
            Some(Kind::Task)
        } else if m.documents.as_ref().is_some_and(|d| d.table == table) {
            Some(Kind::Document)
        } else {
            None
        }
    }

    pub fn plan(&mut self, raw: &RawRecord) -> Result<Planned, Problem> {
        let problem = |reason: String| Problem { legacy_id: raw.id.clone(), reason };
        migration::check_legacy_id(&raw.id).map_err(problem)?;
        let kind = self.kind_of(&raw.table).ok_or_else(|| problem(format!("table {} is not mapped", raw.table)))?;
        let planned = match kind {
            Kind::Tenant => self.tenant(raw),
            Kind::Member => self.member(raw),
            Kind::Task => self.task(raw),
            Kind::Document => self.document(raw),
        }
        .map_err(problem)?;
        self.remember(&planned, raw);
        Ok(planned)
    }

    fn remember(&mut self, planned: &Planned, raw: &RawRecord) {
        match planned {
            Planned::Tenant(t) => {
                self.tenants.insert(t.legacy_id.clone());
                if let Some(owner) =
                    self.mapping.tenants.owner.as_deref().and_then(|f| reference(raw, f).ok().flatten())
                {
                    self.owner_of.insert(t.legacy_id.clone(), owner);
                }
            }
            Planned::Member(m) => {
                if m.role == MigratedRole::Owner.name() {
                    self.owned.insert(m.tenant_legacy_id.clone());
                }
                self.member_of.insert(m.legacy_id.clone(), m.tenant_legacy_id.clone());
            }
            Planned::Task(_) | Planned::Document(_) => {}
        }
    }

    fn tenant(&self, raw: &RawRecord) -> Result<Planned, String> {
        let map = &self.mapping.tenants;
        let name = text(raw, &map.name)?;
        migration::check_tenant_name(&name)?;
        let created_at_micros = time(raw, &map.created_at)?;
        if let Some(owner) = &map.owner {
            reference(raw, owner)?;
        }
        Ok(Planned::Tenant(MigratedTenant { legacy_id: raw.id.clone(), name, created_at_micros }))
    }

    /// The organization a record belongs to, which must have been planned.
    fn tenant_of(&self, raw: &RawRecord, field: &str) -> Result<String, String> {
        let tenant = reference(raw, field)?.ok_or_else(|| format!("missing field {field}"))?;
        if !self.tenants.contains(&tenant) {
            return Err(format!("its organization {tenant} is not migrated (missing or itself a problem)"));
        }
        Ok(tenant)
    }

    fn member(&self, raw: &RawRecord) -> Result<Planned, String> {
        let map = &self.mapping.members;
        let tenant = self.tenant_of(raw, &map.tenant)?;
        let label = text(raw, &map.label)?;
        migration::check_label(&label)?;
        let legacy_role = match &map.role {
            Some(field) => optional_text(raw, field)?,
            None => None,
        };
        let mut role = match (&legacy_role, &map.default_role) {
            (Some(legacy), _) => map
                .roles
                .get(legacy)
                .ok_or_else(|| format!("role {legacy:?} is not in the mapping's members.roles"))?
                .clone(),
            (None, Some(default)) => default.clone(),
            (None, None) => return Err(format!("missing field {}", map.role.as_deref().unwrap_or("role"))),
        };
        // The organization's `owner` field wins: its user is the owner, and
        // another whose legacy role maps to owner reads and submits.
        match self.owner_of.get(&tenant) {
            Some(owner) if *owner == raw.id => role = MigratedRole::Owner.name().into(),
            Some(_) if role == MigratedRole::Owner.name() => role = MigratedRole::Submitter.name().into(),
            _ => {}
        }
        if role == MigratedRole::Owner.name() && self.owned.contains(&tenant) {
            return Err(format!("its organization {tenant} already has an owner"));
        }
        // Its claim code is made when the record is written (`claims::ClaimJournal::assign`).
        let code_hash = String::new();
        Ok(Planned::Member(MigratedMember {
            legacy_id: raw.id.clone(),
            tenant_legacy_id: tenant,
            role,
            label,
            code_hash,
        }))
    }

    fn task(&self, raw: &RawRecord) -> Result<Planned, String> {
        let map = &self.mapping.tasks;
        let tenant = self.tenant_of(raw, &map.tenant)?;
        let legacy_state = text(raw, &map.state)?;
        let state_name = map
            .states
            .get(&legacy_state)
            .ok_or_else(|| format!("state {legacy_state:?} is not in the mapping's tasks.states"))?
            .clone();
        let state = migration::migrated_state(&state_name)?;
        let submitter = match &map.submitter {
            Some(field) => reference(raw, field)?.unwrap_or_default(),
            None => String::new(),
        };
        if !submitter.is_empty() && self.member_of.get(&submitter) != Some(&tenant) {
            return Err(format!("its submitter {submitter} is not a migrated member of {tenant}"));
        }
        let payload = text(raw, &map.payload)?;
        let model = optional(map.model.as_deref(), |f| optional_text(raw, f))?.unwrap_or_default();
        hub_rules::check_model(&model)?;
        let created_at_micros = time(raw, &map.created_at)?;
        let (mut summary, mut reason, mut finished_at_micros) = (String::new(), String::new(), 0);
        match state {
            TaskState::Done => {
                summary = optional(map.result.as_deref(), |f| Ok(field(raw, f).map(as_text)))?.unwrap_or_default();
                finished_at_micros =
                    optional(map.finished_at.as_deref(), |f| optional_time(raw, f))?.unwrap_or(created_at_micros);
            }
            TaskState::Failed | TaskState::Cancelled => {
                reason = optional(map.error.as_deref(), |f| Ok(field(raw, f).map(as_text)))?.unwrap_or_default();
            }
            TaskState::Pending | TaskState::Claimed => {}
        }
        migration::check_migrated_task(state, &payload, &summary, &reason)?;
        Ok(Planned::Task(MigratedTask {
            legacy_id: raw.id.clone(),
            tenant_legacy_id: tenant,
            submitter_legacy_id: submitter,
            payload,
            model,
            state: state_name,
            summary,
            reason,
            created_at_micros,
            finished_at_micros,
        }))
    }

    fn document(&self, raw: &RawRecord) -> Result<Planned, String> {
        let map = self.mapping.documents.as_ref().expect("a document table is mapped");
        let tenant = self.tenant_of(raw, &map.tenant)?;
        let content = match field(raw, &map.content) {
            None => return Err(format!("missing field {}", map.content)),
            Some(Value::String(text)) => text.clone().into_bytes(),
            Some(value) => bytes(value)
                .ok_or_else(|| format!("field {} is {}, not text or bytes", map.content, type_name(value)))?,
        };
        if content.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "it is {} bytes; memory takes documents of at most {MAX_DOCUMENT_BYTES}",
                content.len()
            ));
        }
        let file_name = optional(map.file_name.as_deref(), |f| optional_text(raw, f))?;
        Ok(Planned::Document(LegacyDocument {
            legacy_id: raw.id.clone(),
            tenant_legacy_id: tenant,
            file_name,
            content,
        }))
    }
}

fn optional<T>(name: Option<&str>, read: impl FnOnce(&str) -> Result<Option<T>, String>) -> Result<Option<T>, String> {
    name.map_or(Ok(None), read)
}

/// A field by name (`a.b` reads b of object a); null is absent.
fn field<'a>(raw: &'a RawRecord, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = raw.fields.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    (!value.is_null()).then_some(value)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(o) if o.contains_key("$datetime_micros") => "a datetime",
        Value::Object(o) if o.contains_key("$bytes") => "bytes",
        Value::Object(_) => "an object",
    }
}

fn optional_text(raw: &RawRecord, path: &str) -> Result<Option<String>, String> {
    match field(raw, path) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!("field {path} is {}, not text", type_name(other))),
    }
}

fn text(raw: &RawRecord, path: &str) -> Result<String, String> {
    optional_text(raw, path)?.ok_or_else(|| format!("missing field {path}"))
}

/// A result or an error as the hub keeps it: text as it is, anything else as compact JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A record link, or its id written as text.
fn reference(raw: &RawRecord, path: &str) -> Result<Option<String>, String> {
    match field(raw, path) {
        None => Ok(None),
        Some(Value::String(id)) if id.contains(':') => Ok(Some(id.clone())),
        Some(other) => Err(format!("field {path} is {}, not a record link", type_name(other))),
    }
}

fn optional_time(raw: &RawRecord, path: &str) -> Result<Option<i64>, String> {
    let Some(value) = field(raw, path) else { return Ok(None) };
    if let Some(micros) = value.get("$datetime_micros").and_then(Value::as_i64) {
        return Ok(Some(micros));
    }
    if let Some(text) = value.as_str() {
        return match text.parse::<jiff::Timestamp>() {
            Ok(at) => Ok(Some(at.as_microsecond())),
            Err(_) => Err(format!("field {path} is {text:?}, not a time (a datetime, or RFC 3339 text)")),
        };
    }
    Err(format!("field {path} is {}, not a datetime", type_name(value)))
}

fn time(raw: &RawRecord, path: &str) -> Result<i64, String> {
    optional_time(raw, path)?.ok_or_else(|| format!("missing field {path}"))
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    let encoded = value.get("$bytes")?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(encoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(table: &str, id: &str, fields: Value) -> RawRecord {
        RawRecord { table: table.into(), id: id.into(), fields: fields.as_object().unwrap().clone() }
    }

    fn planner() -> Planner {
        let mut planner = Planner::new(Mapping::default_mapping());
        let org = raw(
            "organization",
            "organization:acme",
            json!({"name": "Acme", "created_at": {"$datetime_micros": 5}, "owner": "user:ada"}),
        );
        planner.plan(&org).unwrap();
        planner
    }

    fn task(fields: Value) -> RawRecord {
        raw("task", "task:1", fields)
    }

    #[test]
    fn an_organization_and_its_people() {
        let mut planner = planner();
        let ada = planner.plan(&raw(
            "user",
            "user:ada",
            json!({"org": "organization:acme", "email": "ada@x", "role": "member"}),
        ));
        let Ok(Planned::Member(ada)) = ada else { panic!("{ada:?}") };
        assert_eq!(ada.role, "owner", "the organization's owner field makes her its owner");
        let bob = planner.plan(&raw(
            "user",
            "user:bob",
            json!({"org": "organization:acme", "email": "bob@x", "role": "viewer"}),
        ));
        assert!(matches!(bob, Ok(Planned::Member(MigratedMember { ref role, .. })) if role == "reader"));
        let legacy_owner = planner.plan(&raw(
            "user",
            "user:eve",
            json!({"org": "organization:acme", "email": "e@x", "role": "owner"}),
        ));
        assert!(matches!(legacy_owner, Ok(Planned::Member(MigratedMember { ref role, .. })) if role == "submitter"));
        let mut ownerless = Planner::new(Mapping::default_mapping());
        ownerless
            .plan(&raw("organization", "organization:b", json!({"name": "B", "created_at": {"$datetime_micros": 1}})))
            .unwrap();
        let first = json!({"org": "organization:b", "email": "1@x", "role": "owner"});
        assert!(ownerless.plan(&raw("user", "user:1", first.clone())).is_ok());
        let second = ownerless.plan(&raw("user", "user:2", first)).unwrap_err();
        assert!(second.reason.contains("already has an owner"), "{second}");
        let unknown_role =
            planner.plan(&raw("user", "user:joe", json!({"org": "organization:acme", "email": "j@x", "role": "god"})));
        assert!(unknown_role.unwrap_err().reason.contains("\"god\""));
        let dangling = planner.plan(&raw("user", "user:x", json!({"org": "organization:gone", "email": "x@x"})));
        assert_eq!(
            dangling.unwrap_err().to_string(),
            "user:x: its organization organization:gone is not migrated (missing or itself a problem)"
        );
    }

    #[test]
    fn tasks_keep_state_times_and_results() {
        let mut planner = planner();
        planner.plan(&raw("user", "user:ada", json!({"org": "organization:acme", "email": "ada@x"}))).unwrap();
        let done = planner.plan(&task(json!({
            "org": "organization:acme", "created_by": "user:ada", "prompt": "2+2?", "status": "completed",
            "result": {"answer": 4}, "created_at": "2024-01-02T03:04:05Z", "finished_at": {"$datetime_micros": 1_704_164_700_000_000i64},
        })));
        let Ok(Planned::Task(done)) = done else { panic!("{done:?}") };
        assert_eq!((done.state.as_str(), done.summary.as_str()), ("done", r#"{"answer":4}"#));
        assert_eq!(done.created_at_micros, 1_704_164_645_000_000);
        assert_eq!(done.submitter_legacy_id, "user:ada");
        let running = planner.plan(&task(json!({"org": "organization:acme", "prompt": "q", "status": "running", "created_at": "2024-01-02T03:04:05Z"})));
        assert!(matches!(running, Ok(Planned::Task(MigratedTask { ref state, .. })) if state == "pending"));
        let digest = Planned::Task(done.clone()).digest();
        assert_ne!(digest, Planned::Task(MigratedTask { summary: "5".into(), ..done }).digest());
    }

    #[test]
    fn bad_tasks_are_named() {
        let mut planner = planner();
        let base = json!({"org": "organization:acme", "prompt": "q", "status": "queued", "created_at": "2024-01-02T03:04:05Z"});
        let with = |key: &str, value: Value| {
            let mut fields = base.clone();
            fields[key] = value;
            task(fields)
        };
        let without = |key: &str| {
            let mut fields = base.clone();
            fields.as_object_mut().unwrap().remove(key);
            task(fields)
        };
        let cases = [
            (without("prompt"), "missing field prompt"),
            (with("prompt", json!(42)), "field prompt is a number, not text"),
            (with("status", json!("exploded")), "state \"exploded\" is not in the mapping"),
            (with("created_at", json!("yesterday")), "\"yesterday\", not a time"),
            (with("created_at", json!(5)), "a number, not a datetime"),
            (with("created_by", json!("user:nobody")), "is not a migrated member"),
            (with("prompt", json!("x".repeat(hub_rules::MAX_PAYLOAD_BYTES + 1))), "the limit is"),
            (with("org", json!(7)), "not a record link"),
        ];
        for (record, expected) in cases {
            let problem = planner.plan(&record).unwrap_err();
            assert_eq!(problem.legacy_id, "task:1");
            assert!(problem.reason.contains(expected), "{} should say {expected:?}", problem.reason);
        }
        assert!(planner.plan(&task(base)).is_ok());
    }

    #[test]
    fn the_example_mapping_reads_nested_fields() {
        let example = include_str!("../../../docs/examples/migrate-mapping.toml");
        let mut planner = Planner::new(Mapping::parse(example, "example").unwrap());
        let meta = json!({"created": "2023-05-01T00:00:00Z", "founder": "account:kim"});
        planner.plan(&raw("workspace", "workspace:w", json!({"display": {"title": "W"}, "meta": meta}))).unwrap();
        let kim = planner.plan(&raw(
            "account",
            "account:kim",
            json!({"workspace": "workspace:w", "profile": {"name": "Kim"}}),
        ));
        assert!(
            matches!(kim, Ok(Planned::Member(MigratedMember { ref role, ref label, .. })) if role == "owner" && label == "Kim")
        );
        let job = planner.plan(&raw(
            "job",
            "job:1",
            json!({"workspace": "workspace:w", "input": {"text": "hi"}, "phase": "ok", "output": {"a": 1},
                   "meta": {"created": "2023-05-02T00:00:00Z", "author": "account:kim"}}),
        ));
        assert!(
            matches!(job, Ok(Planned::Task(MigratedTask { ref summary, ref payload, .. })) if summary == r#"{"a":1}"# && payload == "hi")
        );
    }

    #[test]
    fn documents_are_text_or_bytes() {
        let mut planner = planner();
        let text =
            planner.plan(&raw("document", "document:a", json!({"org": "organization:acme", "content": "hello"})));
        assert!(matches!(text, Ok(Planned::Document(LegacyDocument { ref content, .. })) if content == b"hello"));
        let pdf = planner.plan(&raw(
            "document",
            "document:b",
            json!({"org": "organization:acme", "content": {"$bytes": "JVBERg=="}, "file_name": "a.pdf"}),
        ));
        assert!(matches!(pdf, Ok(Planned::Document(LegacyDocument { ref content, .. })) if content == b"%PDF"));
        let number = planner.plan(&raw("document", "document:c", json!({"org": "organization:acme", "content": 3})));
        assert!(number.unwrap_err().reason.contains("not text or bytes"));
    }
}
