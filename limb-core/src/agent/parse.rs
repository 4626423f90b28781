//! Reading the model's reply: a final answer, or a `run_python` call.
//!
//! The call format is Qwen's (Hermes-style) native one, which the system
//! prompt also spells out for models whose template has none:
//! `<tool_call>{"name": "run_python", "arguments": {"code": "..."}}</tool_call>`.
//! Small models bend it, so the reader also takes: a missing closing tag, a
//! Markdown code fence around the JSON, `arguments` given as a JSON string,
//! raw newlines inside the code string, and a bare JSON object with a `name`.
//! Anything else that looks like a call is `Malformed`, and the reason goes
//! back to the model instead of failing the task.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Final(String),
    Call(ToolCall),
    /// A call (or an empty reply) that could not be used, and why.
    Malformed(String),
}

pub(crate) const OPEN: &str = "<tool_call>";
pub(crate) const CLOSE: &str = "</tool_call>";

pub fn parse_reply(reply: &str) -> Reply {
    let text = reply.trim();
    if let Some(start) = text.find(OPEN) {
        let body = &text[start + OPEN.len()..];
        let body = body.find(CLOSE).map_or(body, |end| &body[..end]);
        return parse_call(body);
    }
    if let Some(start) = call_object_start(text) {
        return parse_call(&text[start..]);
    }
    if text.is_empty() {
        return Reply::Malformed("the reply was empty; answer the task or call run_python".into());
    }
    Reply::Final(text.to_string())
}

/// Where a bare `{"name": …` object starts, if the reply has one.
fn call_object_start(text: &str) -> Option<usize> {
    text.match_indices('{').map(|(at, _)| at).find(|&at| text[at + 1..].trim_start().starts_with("\"name\""))
}

/// The first JSON value in `text`; text after it (a closing fence, a remark) is ignored.
fn first_value(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::Deserializer::from_str(text).into_iter::<Value>().next().unwrap_or_else(|| serde_json::from_str(text))
}

fn parse_call(body: &str) -> Reply {
    let body = strip_fence(body.trim());
    let value = match first_value(body).or_else(|_| first_value(&repair(body))) {
        Ok(value) => value,
        Err(e) => return Reply::Malformed(format!("the tool call is not valid JSON ({e}); use {{\"name\": \"run_python\", \"arguments\": {{\"code\": \"...\"}}}}")),
    };
    match value.get("name").and_then(Value::as_str) {
        Some("run_python") => {}
        Some(other) => return Reply::Malformed(format!("there is no tool `{other}`; the only tool is run_python")),
        None => return Reply::Malformed("the tool call has no \"name\"; use \"run_python\"".into()),
    }
    let arguments = match value.get("arguments") {
        Some(Value::String(encoded)) => serde_json::from_str(encoded).unwrap_or(Value::Null),
        Some(arguments) => arguments.clone(),
        None => value.clone(),
    };
    match arguments.get("code").and_then(Value::as_str).map(str::trim) {
        Some(code) if !code.is_empty() => Reply::Call(ToolCall { code: code.to_string() }),
        _ => Reply::Malformed("run_python needs a non-empty \"code\" string in \"arguments\"".into()),
    }
}

/// The inside of a Markdown code fence (```json … ```), or the text itself.
fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else { return text };
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

/// Escape raw newlines and tabs inside JSON strings (models write code that
/// way), and close objects left open at the end (small models drop the last `}`).
fn repair(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped, mut depth) = (false, false, 0usize);
    for c in json.chars() {
        match c {
            '\n' if in_string => out.push_str("\\n"),
            '\r' if in_string => out.push_str("\\r"),
            '\t' if in_string => out.push_str("\\t"),
            _ => {
                if c == '"' && !(in_string && escaped) {
                    in_string = !in_string;
                } else if !in_string && c == '{' {
                    depth += 1;
                } else if !in_string && c == '}' {
                    depth = depth.saturating_sub(1);
                }
                escaped = in_string && !escaped && c == '\\';
                out.push(c);
            }
        }
    }
    if !in_string {
        out.extend(std::iter::repeat_n('}', depth));
    }
    out
}
