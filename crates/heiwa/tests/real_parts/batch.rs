//! One loaded model serving several sequences at once (`heiwa_inference::Batcher`),
//! with the real chat model on the CPU.

use super::parts;
use heiwa_inference::{
    json_schema_grammar, Batcher, ChatModel, Constraint, FinishReason, GenerateOptions, ModelOptions, SCORE_TOLERANCE,
};
use std::sync::Arc;

fn batcher(slots: u32) -> Batcher {
    let options = ModelOptions { threads: 2, sequences: slots, ..ModelOptions::default() };
    let chat = ChatModel::load(&parts().chat_model().unwrap(), options).expect("chat model loads");
    Batcher::start(Arc::new(chat)).expect("the batch context is made")
}

/// Greedy answers of four different prompts decoded together are the
/// model's own answers: the ones each gets alone (the engine's one-context-
/// per-call path) or, where batched kernels flip a near-tie, answers the
/// scorer passes at every token — no false alarm for a batching limb.
/// Which steps a prompt shares depends on when it arrives, so the flips vary
/// from run to run (seen here: 2 or 3 of 4 identical; "memory" for "hardware"
/// after 20 tokens, "Hello!" for "Bonjour!" at the first).
#[test]
fn greedy_answers_in_a_batch_of_four_are_the_models_own() {
    let batcher = batcher(4);
    let questions = [
        "Name three rivers.",
        "What is a limb in a mesh of computers?",
        "Count from one to ten.",
        "Say hello in French.",
    ];
    let prompts: Vec<String> = questions.iter().map(|q| batcher.model().format_chat(&[("user", q)]).unwrap()).collect();
    let alone: Vec<String> = prompts.iter().map(|p| batcher.model().complete(p, 32).unwrap().text).collect();
    let together: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = prompts
            .iter()
            .map(|prompt| {
                let batcher = &batcher;
                scope.spawn(move || batcher.generate(prompt, &GenerateOptions::greedy(32), &mut |_| true).unwrap())
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap().text).collect()
    });
    let identical = together.iter().zip(&alone).filter(|(a, b)| a == b).count();
    eprintln!("{identical} of 4 batched answers identical to their answers alone");
    for ((prompt, batched), single) in prompts.iter().zip(&together).zip(&alone) {
        let scored = batcher.model().score(prompt, batched).unwrap();
        assert_eq!(scored.first_miss(SCORE_TOLERANCE), None, "{batched:?} (alone: {single:?}): {scored:?}");
    }
    let stats = batcher.stats();
    assert!(stats.generated_tokens >= 4 * 8, "{stats:?}");
    // Four sequences shared steps: far fewer steps than tokens generated.
    assert!(stats.steps < stats.generated_tokens, "{stats:?}");
}

/// Structured output holds for every sequence of a mixed batch: two under a
/// JSON schema's grammar, two free.
#[test]
fn every_constrained_sequence_of_a_mixed_batch_follows_its_grammar() {
    let batcher = batcher(4);
    let schema = serde_json::json!({
        "type": "object", "properties": { "city": { "type": "string" }, "people": { "type": "integer" } },
        "required": ["city", "people"]
    });
    let grammar = json_schema_grammar(&schema).unwrap();
    let answers: Vec<(bool, String)> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|n| {
                let (batcher, grammar) = (&batcher, grammar.clone());
                scope.spawn(move || {
                    let constrained = n % 2 == 0;
                    let question =
                        if constrained { "Give a city and its population as JSON." } else { "Describe a city." };
                    let prompt = batcher.model().format_chat(&[("user", question)]).unwrap();
                    let constraint = if constrained { Constraint::Grammar(grammar) } else { Constraint::Free };
                    let options = GenerateOptions { constraint, ..GenerateOptions::greedy(64) };
                    (constrained, batcher.generate(&prompt, &options, &mut |_| true).unwrap().text)
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for (constrained, text) in answers {
        if constrained {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert!(value["city"].is_string() && value["people"].is_i64(), "{value}");
        } else {
            assert!(!text.trim().is_empty() && serde_json::from_str::<serde_json::Value>(&text).is_err(), "{text}");
        }
    }
}

/// A caller that stops listening frees its slot at the next step: with one
/// slot, a second sequence then runs at once instead of waiting for the first
/// to write its 2,000 tokens.
#[test]
fn a_cancelled_sequence_frees_its_slot() {
    let batcher = batcher(1);
    let prompt = batcher.model().format_chat(&[("user", "Write a very long story about the sea.")]).unwrap();
    let mut pieces = 0;
    let cut = batcher
        .generate(&prompt, &GenerateOptions::greedy(1500), &mut |_| {
            pieces += 1;
            pieces < 3
        })
        .unwrap();
    // The refusal reaches the worker once this thread has read the third piece: a few steps at most.
    assert!(cut.finish == FinishReason::Stop && cut.generated_tokens < 100, "stopped soon after the refusal: {cut:?}");
    let next = batcher.generate(&prompt, &GenerateOptions::greedy(4), &mut |_| true).unwrap();
    assert_eq!(next.generated_tokens, 4, "{next:?}");
    assert_eq!(batcher.stats().running, 0);
    // Work run alone on the batch's thread that panics is its caller's error; the batch goes on.
    assert!(batcher.run_alone(|_| -> u32 { panic!("a broken computation") }).is_err());
    assert_eq!(batcher.run_alone(|model| model.count_tokens("two words")).unwrap(), 2);
    let after = batcher.generate(&prompt, &GenerateOptions::greedy(2), &mut |_| true).unwrap();
    assert_eq!(after.generated_tokens, 2, "{after:?}");
}

/// The agent's prompts begin alike: a second prompt sharing a long system
/// prompt with the first starts after it, and answers as if computed whole.
#[test]
fn a_prompt_sharing_a_cached_prefix_is_computed_from_where_they_differ() {
    let batcher = batcher(2);
    let system = format!("You are a limb of a volunteer mesh. {}", "Answer briefly and cite your sources. ".repeat(40));
    let first = batcher.model().format_chat(&[("system", &system), ("user", "Name a river.")]).unwrap();
    let second = batcher.model().format_chat(&[("system", &system), ("user", "Name a mountain.")]).unwrap();
    batcher.generate(&first, &GenerateOptions::greedy(8), &mut |_| true).unwrap();
    let before = batcher.stats();
    let answer = batcher.generate(&second, &GenerateOptions::greedy(16), &mut |_| true).unwrap();
    let after = batcher.stats();
    let shared = batcher.model().count_tokens(&format!("<|im_start|>system\n{system}"));
    let reused = after.reused_tokens - before.reused_tokens;
    assert!(reused as usize >= shared * 9 / 10, "reused {reused} of a {shared}-token shared prefix: {after:?}");
    assert!(reused < (after.prompt_tokens - before.prompt_tokens), "the differing question is computed");
    assert_eq!(answer.text, batcher.model().complete(&second, 16).unwrap().text, "the same answer as computed whole");
}

/// What the owner sees of a limb's model: whether it is answering now, and
/// how fast its last answer went; and a change of slots while it answers.
#[test]
fn a_limbs_model_says_when_it_is_answering_and_how_its_last_answer_went() {
    use limb_core::agent::{local::LocalChat, Message, Model};
    let options = ModelOptions { threads: 2, ..ModelOptions::default() };
    let chat = LocalChat::new(parts().chat_model().unwrap(), options).unwrap();
    assert!(!chat.is_generating() && chat.last_answer().is_none(), "nothing has run yet");
    let answering = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            let messages = [Message::new("user", "Count from one to twenty in words.")];
            futures::executor::block_on(Model::chat(&chat, &messages, 48)).unwrap()
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = false;
        while !run.is_finished() && std::time::Instant::now() < deadline {
            seen |= chat.is_generating();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!run.join().unwrap().is_empty());
        seen
    });
    assert!(answering, "seen answering while the generation ran");
    assert!(!chat.is_generating(), "idle once it returned");
    let pace = chat.last_answer().expect("how it went is known");
    assert!(pace.tokens > 10, "the count to twenty takes more than ten tokens: {pace:?}");
    let rate = pace.tokens_per_s.expect("more than one token, so a pace");
    assert!(rate > 1.0 && rate < 10_000.0 && pace.first_token_s > 0.0, "plausible: {pace:?}");

    // The governor gives it two slots while a turn runs: that turn ends on the model it began on, and the next
    // one, asked meanwhile, waits for it and loads the model anew with two.
    let ask = |question: &str, tokens| {
        futures::executor::block_on(Model::chat(&chat, &[Message::new("user", question)], tokens)).unwrap()
    };
    assert_eq!(chat.slots().slots, 1);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| ask("Count from one to twenty in words.", 48));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !chat.is_generating() {
            assert!(std::time::Instant::now() < deadline, "the first turn never started");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        chat.set_slots(2);
        let second = scope.spawn(|| ask("Name a river.", 8));
        assert!(!first.join().unwrap().is_empty() && !second.join().unwrap().is_empty(), "both turns answered");
    });
    assert_eq!(chat.slots().slots, 2, "reloaded with the new slots");
}

/// A limb's model with four slots: its tasks' agent turns share the batch,
/// while greedy generation — the work another limb compares token for token
/// (a replicated `heiwa/generate` task) or scores — runs alone between their steps,
/// its tokens exactly those of the model with nothing else to do.
#[test]
fn greedy_generation_beside_a_busy_batch_is_its_lone_answer() {
    use limb_core::agent::{local::LocalChat, Message, Model};
    let options = ModelOptions { threads: 2, ..ModelOptions::default() };
    let chat = LocalChat::new(parts().chat_model().unwrap(), options).unwrap();
    let prompt = "In one sentence: what is a lease?";
    let alone = chat.generate_greedy(prompt).unwrap();
    chat.set_slots(4);
    let beside = std::thread::scope(|scope| {
        let turns: Vec<_> = ["Count from one to thirty in words.", "List ten colours.", "Name ten rivers."]
            .into_iter()
            .map(|question| {
                let chat = &chat;
                scope.spawn(move || {
                    futures::executor::block_on(Model::chat(chat, &[Message::new("user", question)], 96))
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while chat.slots().in_use < 2 {
            assert!(std::time::Instant::now() < deadline, "the agent turns never shared the batch: {:?}", chat.slots());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let beside = chat.generate_greedy(prompt).unwrap();
        let busy = chat.slots().in_use;
        for turn in turns {
            assert!(!turn.join().unwrap().unwrap().is_empty());
        }
        assert!(busy >= 1, "the batch was still at work when the lone generation ended");
        beside
    });
    assert_eq!(beside, alone, "greedy generation beside the batch is its lone answer");
    let slots = chat.slots();
    assert!(slots.slots == 4 && slots.most_in_use >= 2, "{slots:?}");
}
