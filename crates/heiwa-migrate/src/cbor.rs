//! SurrealDB's answers as its RPC protocol sends them: CBOR, with SurrealDB's
//! documented tags for its own types. A page becomes records as
//! [`crate::plan`] reads them: a record link as its id (`table:key`, written
//! as SurrealQL writes it, so `t:1` and `t:⟨1⟩` stay two ids), a datetime as
//! `{"$datetime_micros": …}`, bytes as `{"$bytes": base64}`.

use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{json, Map, Value};

// SurrealDB's CBOR tags (its RPC protocol's documentation).
const TAG_DATETIME_TEXT: u64 = 0;
const TAG_NONE: u64 = 6;
const TAG_TABLE: u64 = 7;
const TAG_RECORD_ID: u64 = 8;
const TAG_UUID_TEXT: u64 = 9;
const TAG_DECIMAL_TEXT: u64 = 10;
const TAG_DATETIME: u64 = 12;
const TAG_DURATION_TEXT: u64 = 13;
const TAG_DURATION: u64 = 14;
const TAG_UUID: u64 = 37;

/// A record as a page holds it: its id and its other fields.
pub type Row = (String, Map<String, Value>);

/// The rows of one `SELECT` answer.
pub fn page_rows(answer: &[u8]) -> Result<Vec<Row>, String> {
    let envelope: Cbor = ciborium::de::from_reader(answer).map_err(|e| format!("not CBOR: {e}"))?;
    if let Some(error) = field(&envelope, "error") {
        let message = field(error, "message").map_or_else(|| json_of(error).to_string(), text_of);
        return Err(format!("SurrealDB said: {message}"));
    }
    let statement = field(&envelope, "result")
        .and_then(Cbor::as_array)
        .and_then(|results| results.first())
        .ok_or("an answer without a result")?;
    let result = field(statement, "result").ok_or("a statement without a result")?;
    if field(statement, "status").and_then(Cbor::as_text) != Some("OK") {
        return Err(format!("SurrealDB said: {}", text_of(result)));
    }
    let rows = result.as_array().ok_or("a SELECT answered with something other than rows")?;
    rows.iter()
        .map(|row| {
            let Value::Object(mut fields) = json_of(row) else { return Err("a row that is not an object".to_string()) };
            match fields.remove("id") {
                Some(Value::String(id)) => Ok((id, fields)),
                other => Err(format!("a row whose id is not a record id: {other:?}")),
            }
        })
        .collect()
}

fn field<'a>(map: &'a Cbor, name: &str) -> Option<&'a Cbor> {
    map.as_map()?.iter().find(|(key, _)| key.as_text() == Some(name)).map(|(_, value)| value)
}

fn text_of(value: &Cbor) -> String {
    value.as_text().map_or_else(|| json_of(value).to_string(), str::to_string)
}

/// A value as JSON, SurrealDB's own types as the module documentation says.
pub fn json_of(value: &Cbor) -> Value {
    match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => json!(b),
        Cbor::Integer(i) => {
            let i = i128::from(*i);
            i64::try_from(i)
                .map(Value::from)
                .or_else(|_| u64::try_from(i).map(Value::from))
                .unwrap_or(json!(i.to_string()))
        }
        Cbor::Float(f) => serde_json::Number::from_f64(*f).map_or_else(|| json!(f.to_string()), Value::Number),
        Cbor::Text(text) => json!(text),
        Cbor::Bytes(bytes) => json!({ "$bytes": base64::engine::general_purpose::STANDARD.encode(bytes) }),
        Cbor::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.as_text().map_or_else(|| text_of(key), str::to_string), json_of(value)))
                .collect(),
        ),
        Cbor::Tag(tag, inner) => tagged(*tag, inner),
        _ => Value::Null,
    }
}

fn tagged(tag: u64, inner: &Cbor) -> Value {
    match (tag, inner) {
        (TAG_NONE, _) => Value::Null,
        (TAG_RECORD_ID, Cbor::Array(parts)) if parts.len() == 2 => {
            json!(format!("{}:{}", text_of(&parts[0]), record_key(&parts[1])))
        }
        (TAG_DATETIME, Cbor::Array(parts)) => {
            let number = |i: usize| parts.get(i).and_then(|p| p.as_integer()).map_or(0, i128::from);
            json!({ "$datetime_micros": number(0) * 1_000_000 + number(1) / 1000 })
        }
        (TAG_DATETIME_TEXT, Cbor::Text(text)) => match text.parse::<jiff::Timestamp>() {
            Ok(at) => json!({ "$datetime_micros": at.as_microsecond() }),
            Err(_) => json!(text),
        },
        (TAG_UUID, Cbor::Bytes(bytes)) => json!(uuid_text(bytes)),
        (TAG_DURATION, Cbor::Array(parts)) => {
            let number = |i: usize| parts.get(i).and_then(|p| p.as_integer()).map_or(0, i128::from);
            json!(format!("{}s", number(0) as f64 + number(1) as f64 / 1e9))
        }
        (TAG_TABLE | TAG_UUID_TEXT | TAG_DECIMAL_TEXT | TAG_DURATION_TEXT, value) => json!(text_of(value)),
        // Ranges, geometries: their parts, as JSON.
        (_, value) => json_of(value),
    }
}

/// A record id's key as SurrealQL writes it.
fn record_key(key: &Cbor) -> String {
    match key {
        Cbor::Text(text) if is_plain(text) => text.clone(),
        Cbor::Text(text) => format!("⟨{text}⟩"),
        Cbor::Integer(i) => i128::from(*i).to_string(),
        Cbor::Tag(TAG_UUID, inner) => match inner.as_ref() {
            Cbor::Bytes(bytes) => format!("u'{}'", uuid_text(bytes)),
            other => format!("u'{}'", text_of(other)),
        },
        Cbor::Tag(TAG_UUID_TEXT, inner) => format!("u'{}'", text_of(inner)),
        // An array or object key: compact JSON (serde_json's maps are sorted).
        other => json_of(other).to_string(),
    }
}

fn is_plain(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() != 32 {
        return hex;
    }
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn text(s: &str) -> Cbor {
        Cbor::Text(s.into())
    }

    fn link(table: &str, key: Cbor) -> Cbor {
        Cbor::Tag(TAG_RECORD_ID, Box::new(Cbor::Array(vec![text(table), key])))
    }

    pub(crate) fn row(table: &str, key: &str, name: &str, value: &str) -> Cbor {
        Cbor::Map(vec![(text("id"), link(table, text(key))), (text(name), text(value))])
    }

    /// An RPC answer to one statement, as SurrealDB encodes it.
    pub(crate) fn answer(rows: Vec<Cbor>) -> Vec<u8> {
        let statement = Cbor::Map(vec![(text("status"), text("OK")), (text("result"), Cbor::Array(rows))]);
        let envelope = Cbor::Map(vec![(text("id"), text("x")), (text("result"), Cbor::Array(vec![statement]))]);
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&envelope, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn surrealdb_types_become_what_the_plan_reads() {
        let uuid = Cbor::Tag(TAG_UUID, Box::new(Cbor::Bytes((0u8..16).collect())));
        let record = Cbor::Map(vec![
            (text("id"), link("task", Cbor::Integer(7.into()))),
            (text("org"), link("organization", text("acme"))),
            (text("odd"), link("user", text("a b"))),
            (text("quoted"), link("user", text("1"))),
            (text("by_uuid"), link("doc", uuid.clone())),
            (
                text("made"),
                Cbor::Tag(
                    TAG_DATETIME,
                    Box::new(Cbor::Array(vec![Cbor::Integer(1_704_067_200.into()), Cbor::Integer(5_000.into())])),
                ),
            ),
            (text("text_time"), Cbor::Tag(TAG_DATETIME_TEXT, Box::new(text("2024-01-01T00:00:01Z")))),
            (text("gone"), Cbor::Tag(TAG_NONE, Box::new(Cbor::Null))),
            (text("price"), Cbor::Tag(TAG_DECIMAL_TEXT, Box::new(text("1.50")))),
            (text("blob"), Cbor::Bytes(b"%PDF".to_vec())),
            (text("nested"), Cbor::Map(vec![(text("n"), Cbor::Float(1.5))])),
        ]);
        let rows = page_rows(&answer(vec![record])).unwrap();
        let (id, fields) = &rows[0];
        assert_eq!(id, "task:7");
        assert_eq!(fields["org"], "organization:acme");
        assert_eq!(fields["odd"], "user:⟨a b⟩");
        assert_eq!(fields["quoted"], "user:⟨1⟩", "a text key that looks like a number is not the number");
        assert_eq!(fields["by_uuid"], "doc:u'00010203-0405-0607-0809-0a0b0c0d0e0f'");
        assert_eq!(fields["made"], json!({"$datetime_micros": 1_704_067_200_000_005i64}));
        assert_eq!(fields["text_time"], json!({"$datetime_micros": 1_704_067_201_000_000i64}));
        assert_eq!(fields["gone"], Value::Null);
        assert_eq!(fields["price"], "1.50");
        assert_eq!(fields["blob"], json!({"$bytes": "JVBERg=="}));
        assert_eq!(fields["nested"]["n"], 1.5);
    }

    #[test]
    fn errors_are_surrealdbs_own_words() {
        let mut bytes = Vec::new();
        let error = Cbor::Map(vec![(text("error"), Cbor::Map(vec![(text("message"), text("There was a problem"))]))]);
        ciborium::ser::into_writer(&error, &mut bytes).unwrap();
        assert_eq!(page_rows(&bytes).unwrap_err(), "SurrealDB said: There was a problem");
        let statement = Cbor::Map(vec![(text("status"), text("ERR")), (text("result"), text("table is locked"))]);
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&Cbor::Map(vec![(text("result"), Cbor::Array(vec![statement]))]), &mut bytes)
            .unwrap();
        assert_eq!(page_rows(&bytes).unwrap_err(), "SurrealDB said: table is locked");
        assert!(page_rows(b"\xff\x00").unwrap_err().starts_with("not CBOR"));
    }
}
