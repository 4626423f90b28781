//! The agent loop against scripted parts: each way a part can fail, and what the loop does.

use super::*;
use heiwa_sandbox::LimitHit;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A scripted part's failure, with the message the script gave.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Scripted(String);

impl From<&str> for Scripted {
    fn from(message: &str) -> Self {
        Scripted(message.into())
    }
}

/// Replies from a script, recording every prompt it was shown.
#[derive(Default)]
struct ScriptedModel {
    replies: Mutex<VecDeque<Result<String, Scripted>>>,
    seen: Mutex<Vec<Vec<Message>>>,
}

impl ScriptedModel {
    fn new(replies: &[&str]) -> Self {
        ScriptedModel { replies: Mutex::new(replies.iter().map(|r| Ok(r.to_string())).collect()), ..Default::default() }
    }
    fn prompts(&self) -> Vec<Vec<Message>> {
        self.seen.lock().unwrap().clone()
    }
}

impl Model for ScriptedModel {
    type Error = Scripted;

    async fn chat(&self, messages: &[Message], _max_tokens: usize) -> Result<String, Scripted> {
        self.seen.lock().unwrap().push(messages.to_vec());
        self.replies.lock().unwrap().pop_front().unwrap_or_else(|| {
            Ok("<tool_call>{\"name\": \"run_python\", \"arguments\": {\"code\": \"print(1)\"}}</tool_call>".into())
        })
    }
}

struct FixedPassages(Vec<Citation>);

impl Retriever for FixedPassages {
    type Error = Scripted;

    async fn retrieve(&self, _question: &str, k: i64) -> Result<Vec<Citation>, Scripted> {
        Ok(self.0.iter().take(k as usize).cloned().collect())
    }
}

/// Runs nothing: answers each code with what a script says, and records the code.
#[derive(Default)]
struct FakeTools {
    ran: Mutex<Vec<String>>,
    broken: bool,
}

impl Tools for FakeTools {
    type Error = Scripted;

    async fn run_python(&self, code: &str) -> Result<RunOutput, Scripted> {
        if self.broken {
            return Err("no container engine answered".into());
        }
        self.ran.lock().unwrap().push(code.to_string());
        let looping = code.contains("while True");
        Ok(RunOutput {
            stdout: if looping { String::new() } else { "42\n".into() },
            stderr: String::new(),
            exit_code: if looping { None } else { Some(0) },
            limit: looping.then_some(LimitHit::Timeout),
        })
    }
}

fn passage(path: &str, content: &str) -> Citation {
    Citation {
        path: path.into(),
        position: 2,
        span: (100, 180),
        content: content.into(),
        score: 0.03,
        similarity: 0.5,
        page: None,
        lines: None,
        also: Vec::new(),
    }
}

fn agent(model: ScriptedModel, tools: FakeTools) -> Agent<ScriptedModel, FixedPassages, FakeTools> {
    let passages = FixedPassages(vec![passage("/home/ann/notes/boinc.md", "BOINC reassigns work after a deadline.")]);
    Agent { model, retriever: passages, tools, budget: Budget::default() }
}

const CALL: &str = "<tool_call>\n{\"name\": \"run_python\", \"arguments\": {\"code\": \"print(6*7)\"}}\n</tool_call>";

#[tokio::test]
async fn a_direct_answer_uses_the_passages_and_takes_one_step() {
    let agent = agent(ScriptedModel::new(&["Work is reassigned after its deadline [1]."]), FakeTools::default());
    let answer = agent.answer("What happens when a volunteer vanishes?").await.unwrap();
    assert_eq!(answer.text, "Work is reassigned after its deadline [1].");
    assert_eq!((answer.steps, answer.tool_uses.len(), answer.citations.len()), (1, 0, 1));
    let prompt = &agent.model.prompts()[0];
    assert!(
        prompt[0].content.contains("run_python") && prompt[0].content.contains("<tool_call>"),
        "the system prompt carries the tool schema"
    );
    assert!(prompt[1].content.contains("[1] boinc.md: BOINC reassigns work"), "{}", prompt[1].content);
    assert!(prompt[1].content.ends_with("Task: What happens when a volunteer vanishes?"));
}

#[tokio::test]
async fn a_tool_call_runs_and_its_output_goes_back_to_the_model() {
    let agent = agent(ScriptedModel::new(&[CALL, "6*7 is 42."]), FakeTools::default());
    let answer = agent.answer("What is 6*7?").await.unwrap();
    assert_eq!(answer.text, "6*7 is 42.");
    assert_eq!(agent.tools.ran.lock().unwrap().as_slice(), ["print(6*7)"]);
    assert_eq!(answer.tool_uses[0].stdout, "42\n");
    let second = &agent.model.prompts()[1];
    assert_eq!(second[2], Message::new("assistant", CALL));
    assert!(
        second[3].content.starts_with("<tool_response>") && second[3].content.contains(r#""stdout":"42\n""#),
        "{}",
        second[3].content
    );
}

#[tokio::test]
async fn a_malformed_call_is_reported_to_the_model_not_crashed_on() {
    let broken = "<tool_call>{\"name\": \"run_python\", \"arguments\": {\"code\": </tool_call>";
    let agent = agent(
        ScriptedModel::new(&[broken, "<tool_call>{\"name\": \"shell\"}</tool_call>", "Sorry, 42."]),
        FakeTools::default(),
    );
    let answer = agent.answer("What is 6*7?").await.unwrap();
    assert_eq!((answer.text.as_str(), answer.steps), ("Sorry, 42.", 3));
    assert!(agent.tools.ran.lock().unwrap().is_empty(), "nothing ran");
    let last = agent.model.prompts().pop().unwrap();
    assert!(last[3].content.contains("error: the tool call is not valid JSON"), "{}", last[3].content);
    assert!(last[5].content.contains("there is no tool `shell`"), "{}", last[5].content);
}

fn call(code: &str) -> String {
    format!("<tool_call>{{\"name\": \"run_python\", \"arguments\": {{\"code\": \"{code}\"}}}}</tool_call>")
}

#[tokio::test]
async fn a_model_that_never_answers_exhausts_the_budget() {
    let calls = [call("print(1)"), call("print(2)"), call("print(3)"), call("print(4)")];
    let agent = agent(ScriptedModel::new(&calls.each_ref().map(String::as_str)), FakeTools::default());
    let err = agent.answer("loop forever").await.unwrap_err();
    assert!(matches!(err, AgentError::Budget { steps: 4, tool_calls: 3 }), "{err}");
    let prompts = agent.model.prompts();
    assert_eq!(prompts.len(), 4);
    assert!(!prompts[3][0].content.contains("<tools>"), "the last turn is asked without the tool");
    assert!(prompts[3][1].content.contains("print(3)\nprinted: 42"), "{}", prompts[3][1].content);
}

#[tokio::test]
async fn a_repeated_call_is_not_run_again_and_the_model_is_asked_to_answer() {
    let agent = agent(ScriptedModel::new(&[CALL, CALL, "42 [1]"]), FakeTools::default());
    let answer = agent.answer("What is 6*7?").await.unwrap();
    assert_eq!((answer.text.as_str(), answer.steps, answer.tool_uses.len()), ("42 [1]", 3, 1));
    assert_eq!(agent.tools.ran.lock().unwrap().len(), 1);
    let last = agent.model.prompts().pop().unwrap();
    assert_eq!(last.len(), 2);
    assert!(
        last[1].content.contains("[1] boinc.md") && last[1].content.contains("print(6*7)\nprinted: 42"),
        "{}",
        last[1].content
    );
}

#[tokio::test]
async fn a_limit_hit_is_shown_to_the_model() {
    let looping = "<tool_call>{\"name\": \"run_python\", \"arguments\": {\"code\": \"while True: pass\"}}</tool_call>";
    let agent = agent(ScriptedModel::new(&[looping, "It did not finish."]), FakeTools::default());
    let answer = agent.answer("spin").await.unwrap();
    assert_eq!(answer.tool_uses[0].limit, Some(LimitHit::Timeout));
    assert!(agent.model.prompts()[1][3].content.contains(r#""stopped_by":"timeout""#));
}

#[tokio::test]
async fn tool_and_model_failures_fail_the_task_with_a_reason() {
    let agent = agent(ScriptedModel::new(&[CALL]), FakeTools { broken: true, ..Default::default() });
    let err = agent.answer("What is 6*7?").await.unwrap_err();
    assert!(matches!(&err, AgentError::Tool(m) if m.to_string().contains("no container engine")), "{err}");

    let failing = ScriptedModel {
        replies: Mutex::new(VecDeque::from([Err("the prompt is 5000 tokens but the context holds 4096".into())])),
        ..Default::default()
    };
    let err = agent_with(failing).answer("a long task").await.unwrap_err();
    assert!(err.to_string().starts_with("the model failed: the prompt is 5000 tokens"), "{err}");

    assert!(matches!(agent_with(ScriptedModel::new(&[])).answer("  \n").await.unwrap_err(), AgentError::EmptyTask));
}

fn agent_with(model: ScriptedModel) -> Agent<ScriptedModel, FixedPassages, FakeTools> {
    agent(model, FakeTools::default())
}

mod parsing {
    use super::super::*;

    fn code(reply: &str) -> String {
        match parse_reply(reply) {
            Reply::Call(ToolCall { code }) => code,
            other => panic!("expected a call from {reply:?}, got {other:?}"),
        }
    }

    fn malformed(reply: &str) -> String {
        match parse_reply(reply) {
            Reply::Malformed(reason) => reason,
            other => panic!("expected a malformed call from {reply:?}, got {other:?}"),
        }
    }

    #[test]
    fn the_native_format_and_its_common_variations_are_read() {
        assert_eq!(
            code(r#"<tool_call>{"name": "run_python", "arguments": {"code": "print(1)"}}</tool_call>"#),
            "print(1)"
        );
        assert_eq!(
            code("Let me compute.\n<tool_call>\n{\"name\": \"run_python\", \"arguments\": {\"code\": \"print(2)\"}}"),
            "print(2)",
            "no closing tag"
        );
        assert_eq!(code("<tool_call>\n```json\n{\"name\": \"run_python\", \"arguments\": {\"code\": \"print(3)\"}}\n```\n</tool_call>"), "print(3)");
        assert_eq!(
            code(r#"<tool_call>{"name": "run_python", "arguments": "{\"code\": \"print(4)\"}"}</tool_call>"#),
            "print(4)",
            "arguments as a string"
        );
        assert_eq!(
            code("<tool_call>{\"name\": \"run_python\", \"arguments\": {\"code\": \"x = 5\n\tprint(x)\"}}</tool_call>"),
            "x = 5\n\tprint(x)",
            "raw newlines"
        );
        assert_eq!(
            code(r#"{"name": "run_python", "arguments": {"code": "print(\"6\")"}}"#),
            "print(\"6\")",
            "bare JSON"
        );
        assert_eq!(
            code(r#"{"name": "run_python", "arguments": {"code": "print('{')"}"#),
            "print('{')",
            "last brace dropped"
        );
        assert_eq!(
            code("```json\n{\"name\": \"run_python\", \"code\": \"print(7)\"}\n```"),
            "print(7)",
            "fenced, flat"
        );
        assert_eq!(
            code("[1] {\"name\": \"run_python\", \"arguments\": {\"code\": \"print(8)\"}} and done"),
            "print(8)",
            "text around it"
        );
    }

    #[test]
    fn broken_calls_say_what_is_wrong() {
        assert!(malformed("<tool_call>{\"name\": \"run_python\", \"arguments\": {\"code\": ]}</tool_call>")
            .contains("not valid JSON"));
        assert!(malformed(r#"<tool_call>{"name": "bash", "arguments": {"code": "ls"}}</tool_call>"#)
            .contains("no tool `bash`"));
        assert!(malformed(r#"<tool_call>{"arguments": {"code": "ls"}}</tool_call>"#).contains("no \"name\""));
        assert!(malformed(r#"<tool_call>{"name": "run_python", "arguments": {"code": "  "}}</tool_call>"#)
            .contains("non-empty \"code\""));
        assert!(malformed("  \n ").contains("empty"));
    }

    #[test]
    fn plain_answers_are_final_even_with_braces() {
        assert_eq!(
            parse_reply("  The set {1, 2} has two elements. "),
            Reply::Final("The set {1, 2} has two elements.".into())
        );
        assert_eq!(parse_reply("{\"answer\": 42}"), Reply::Final("{\"answer\": 42}".into()));
    }
}

mod summaries {
    use super::super::*;
    use super::passage;

    fn answer(text: &str) -> Answer {
        Answer {
            text: text.into(),
            citations: vec![passage("/home/ann/private/boinc.md", "SECRET passage text")],
            tool_uses: vec![],
            steps: 1,
        }
    }

    #[test]
    fn a_summary_cites_by_file_name_and_carries_no_passage_text() {
        let json: serde_json::Value = serde_json::from_str(&summary_payload(&answer("Reassigned [1]."), 8192)).unwrap();
        assert_eq!(json["answer"], "Reassigned [1].");
        assert_eq!(
            json["citations"][0],
            serde_json::json!({"n": 1, "file": "boinc.md", "chunk": 2, "span": [100, 180]})
        );
        assert!(json.get("truncated").is_none());
        let text = json.to_string();
        assert!(!text.contains("SECRET") && !text.contains("/home/ann"), "{text}");
    }

    #[test]
    fn a_long_answer_is_cut_to_the_hubs_limit_at_a_character_boundary() {
        let long = "é\"".repeat(5000); // quotes double when escaped
        let payload = summary_payload(&answer(&long), 8192);
        assert!(payload.len() <= 8192, "{}", payload.len());
        let json: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(json["truncated"], true);
        assert!(long.starts_with(json["answer"].as_str().unwrap()) && json["answer"].as_str().unwrap().len() > 4000);
    }
}
