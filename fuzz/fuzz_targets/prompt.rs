//! Prompt assembly on the real bundle's manifest and tokenizer: arbitrary task, user text, box, image
//! size and labels through `prompt::build`. Properties: no panic; an accepted prompt starts with the
//! manifest's BOS ids, every id is inside the vocabulary, and the instruction keeps at most
//! `max_words` words of user text.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use unimed_edge::bundle::{Manifest, MANIFEST_FILE};
use unimed_edge::text::prompt::{build, clean_text, PromptInput};
use unimed_edge::text::tokenizer::TextTokenizer;
use unimed_edge::{Bundle, Labels, Task};

#[path = "common.rs"]
mod common;

struct Fixture {
    manifest: Manifest,
    tokenizer: TextTokenizer,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = common::bundle_dir();
        let bundle = Bundle::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.join(MANIFEST_FILE).display()));
        let manifest = bundle.manifest().clone();
        let tokenizer = TextTokenizer::open(&bundle.path(&manifest.tokenizer.file))
            .unwrap_or_else(|e| panic!("tokenizer of {}: {e}", dir.display()));
        Fixture { manifest, tokenizer }
    })
}

#[derive(Debug, Arbitrary)]
struct Input {
    task: u8,
    text: Option<String>,
    bbox: Option<[f64; 4]>,
    size: (u32, u32),
    label_set: Option<String>,
    labels: Option<Vec<String>>,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let task = Task::ALL[usize::from(input.task) % Task::ALL.len()];
    let labels = match (input.label_set, input.labels) {
        (Some(set), _) => Some(Labels::Set(set)),
        (None, Some(list)) => Some(Labels::Custom(list)),
        (None, None) => None,
    };
    let prompt_input = PromptInput {
        task,
        text: input.text.as_deref(),
        bbox: input.bbox.map(|b| (b, input.size)),
        labels: labels.as_ref(),
    };
    let max_words = f.manifest.prompt.max_words;
    if let Some(t) = input.text.as_deref() {
        let cleaned = clean_text(t, max_words);
        assert!(cleaned.split(' ').count() <= max_words, "clean_text kept more than {max_words} words");
    }
    if let Ok(prompt) = build(&f.manifest, &f.tokenizer, &prompt_input) {
        assert!(prompt.before.starts_with(&f.manifest.prompt.bos_ids), "prompt lost its BOS ids");
        let vocab = f.manifest.model.vocab_size;
        assert!(prompt.before.iter().chain(&prompt.after).all(|&id| (id as usize) < vocab), "id outside the vocabulary");
    }
});
