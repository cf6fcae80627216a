//! Prompt assembly, exactly as docs/BUNDLE.md "prompt" and the reference's evaluation prompt:
//! image tasks `bos_ids ‖ enc(image_before) ‖ <image embeds> ‖ enc(image_after)`, text-only tasks
//! `bos_ids ‖ enc(text_only)`. Each text segment is encoded on its own without special tokens, which
//! reproduces the reference's double BOS and per-segment `▁` prefix. Must agree bit for bit with
//! `export/unimed_export/prompt.py`.

use crate::bundle::{Manifest, PH_BOX, PH_INSTRUCTION, PH_LABELS, PH_TEXT};
use crate::error::{Error, Result};
use crate::request::{Labels, Task};
use crate::text::tokenizer::TextTokenizer;

/// A tokenised prompt around the (optional) image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Ids before the image (the whole prompt for text-only tasks).
    pub before: Vec<u32>,
    /// Ids after the image (empty for text-only tasks).
    pub after: Vec<u32>,
    /// Whether image embeddings go between `before` and `after`.
    pub has_image: bool,
    /// The instruction text as inserted into the template (for logs and tests).
    pub instruction: String,
}

impl Prompt {
    /// Prompt length in positions, counting `num_image_tokens` for the image.
    pub fn len(&self, num_image_tokens: usize) -> usize {
        self.before.len() + self.after.len() + if self.has_image { num_image_tokens } else { 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty() && !self.has_image
    }
}

/// What the prompt needs from a request.
#[derive(Debug, Clone, Copy)]
pub struct PromptInput<'a> {
    pub task: Task,
    pub text: Option<&'a str>,
    /// Pixel box and the original image size `(width, height)`.
    pub bbox: Option<([f64; 4], (u32, u32))>,
    pub labels: Option<&'a Labels>,
}

/// The reference's `blip_caption_new` text cleaning: runs of two or more whitespace characters become
/// one space, trailing newlines and surrounding spaces are stripped, and the text is cut to
/// `max_words` words (split on single spaces, as Python's `str.split(" ")`).
pub fn clean_text(text: &str, max_words: usize) -> String {
    let collapsed = collapse_whitespace(text);
    let stripped = collapsed.trim_end_matches('\n').trim_matches(' ');
    let words: Vec<&str> = stripped.split(' ').collect();
    if words.len() > max_words {
        words[..max_words].join(" ")
    } else {
        stripped.to_string()
    }
}

/// User text longer than the prompt rule's word limit: the model is asked the first `words_kept` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub words_given: usize,
    pub words_kept: usize,
}

/// Whether `clean_text(text, max_words)` cuts words off, and how many it keeps.
pub fn truncation(text: &str, max_words: usize) -> Option<Truncation> {
    let collapsed = collapse_whitespace(text);
    let words_given = collapsed
        .trim_end_matches('\n')
        .trim_matches(' ')
        .split(' ')
        .count();
    (words_given > max_words).then_some(Truncation {
        words_given,
        words_kept: max_words,
    })
}

/// `re.sub(r"\s{2,}", " ", text)`.
fn collapse_whitespace(text: &str) -> String {
    let mut collapsed = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if py_is_space(c) {
            run.push(c);
            continue;
        }
        flush_run(&mut collapsed, &mut run);
        collapsed.push(c);
    }
    flush_run(&mut collapsed, &mut run);
    collapsed
}

/// Python's `\s` for `str` patterns (`str.isspace()`): Unicode White_Space plus the ASCII
/// information separators U+001C..U+001F, which Rust's `is_whitespace` does not include.
fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `re.sub(r"\s{2,}", " ", ...)`: a single whitespace character is kept as it is.
fn flush_run(out: &mut String, run: &mut String) {
    if run.chars().count() >= 2 {
        out.push(' ');
    } else {
        out.push_str(run);
    }
    run.clear();
}

/// A box must lie inside the image it refers to, corners in order: `0 <= x1 < x2 <= width`, likewise y.
pub fn check_box(bbox: [f64; 4], size: (u32, u32)) -> Result<()> {
    let (w, h) = (f64::from(size.0), f64::from(size.1));
    if w <= 0.0 || h <= 0.0 {
        return Err(Error::Request(format!(
            "box given for an image of size {}x{}",
            size.0, size.1
        )));
    }
    if bbox.iter().any(|v| !v.is_finite()) {
        return Err(Error::Request(format!(
            "box {bbox:?} has a non-finite coordinate"
        )));
    }
    let [x1, y1, x2, y2] = bbox;
    if !(0.0 <= x1 && x1 < x2 && x2 <= w && 0.0 <= y1 && y1 < y2 && y2 <= h) {
        return Err(Error::Request(format!(
            "box {bbox:?}: expected 0 <= x1 < x2 <= {} and 0 <= y1 < y2 <= {} (pixels of the original image)",
            size.0, size.1
        )));
    }
    Ok(())
}

/// The reference's box text: `int(x1/W*scale)`, ... (f64 division then multiplication, truncation
/// toward zero), formatted with `box_format`'s four `%d`.
pub fn box_text(
    bbox: [f64; 4],
    size: (u32, u32),
    box_format: &str,
    box_scale: u32,
) -> Result<String> {
    check_box(bbox, size)?;
    let (w, h) = (f64::from(size.0), f64::from(size.1));
    let scale = f64::from(box_scale);
    let values = [
        bbox[0] / w * scale,
        bbox[1] / h * scale,
        bbox[2] / w * scale,
        bbox[3] / h * scale,
    ]
    .map(|v| v.trunc() as i64);
    let mut out = String::with_capacity(box_format.len() + 16);
    let mut parts = box_format.split("%d");
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (v, part) in values.iter().zip(parts) {
        out.push_str(&v.to_string());
        out.push_str(part);
    }
    Ok(out)
}

/// `a, b, or c` — the style of the reference's classification questions.
pub fn join_labels(labels: &[String]) -> String {
    match labels {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, or {last}", init.join(", ")),
    }
}

/// Minimum number of labels of a custom list (one label is not a question).
const MIN_CUSTOM_LABELS: usize = 2;

/// The instruction of a request: the task's template with `{box}` or `{text}` filled in, with the
/// rules of `prompt.py` `build_instruction`: user text is cleaned and counts as absent when empty;
/// only `reg` takes a box and only `cls` takes labels; for `cls` the text is the whole question, else
/// the labels' question; a cls request with neither is refused (the reference would ask its default set).
pub fn instruction(manifest: &Manifest, input: &PromptInput) -> Result<String> {
    let name = input.task.name();
    let spec = manifest.tasks.get(name).ok_or_else(|| {
        Error::Request(format!(
            "the bundle has no task \"{name}\" (tasks: {:?})",
            manifest.tasks.keys()
        ))
    })?;
    let p = &manifest.prompt;
    let text = input
        .text
        .map(|t| clean_text(t, p.max_words))
        .filter(|t| !t.is_empty());
    if input.labels.is_some() && input.task != Task::Cls {
        return Err(Error::Request(format!(
            "task \"{name}\" does not take labels (only cls does)"
        )));
    }
    if input.bbox.is_some() && input.task != Task::Reg {
        return Err(Error::Request(format!(
            "task \"{name}\" does not take a box (only reg does)"
        )));
    }
    if spec.instruction.contains(PH_BOX) {
        if text.is_some() {
            return Err(Error::Request(format!(
                "task \"{name}\" takes a box, not text"
            )));
        }
        let (bbox, size) = input.bbox.ok_or_else(|| {
            Error::Request(format!(
                "task \"{name}\" needs a box [x1, y1, x2, y2] (--box) and an image"
            ))
        })?;
        return Ok(spec
            .instruction
            .replace(PH_BOX, &box_text(bbox, size, &p.box_format, p.box_scale)?));
    }
    let text = match (text, input.labels) {
        // The text is the whole question; the labels are still validated (they are matched later).
        (Some(t), Some(labels)) => {
            label_question(manifest, labels)?;
            Some(t)
        }
        (Some(t), None) => Some(t),
        (None, Some(labels)) => Some(label_question(manifest, labels)?),
        // The reference would ask its default set (DermaMNIST) — for a CT as well. Not silently here.
        (None, None) if input.task == Task::Cls => return Err(Error::Request(format!(
            "task \"cls\" needs its labels: a label set of the bundle ({}), a list of custom labels, or \
             the whole question as text",
            manifest.label_sets.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
        ))),
        (None, None) => spec.default_text.clone(),
    };
    let text = text.ok_or_else(|| {
        Error::Request(format!(
            "task \"{name}\" needs text (non-empty after whitespace collapse)"
        ))
    })?;
    Ok(spec.instruction.replace(PH_TEXT, &text))
}

/// `prompt.py` `_clean_labels`: each label whitespace-collapsed and stripped; at least two, all
/// distinct and non-empty.
pub fn clean_labels(labels: &[String]) -> Result<Vec<String>> {
    let cleaned: Vec<String> = labels
        .iter()
        .map(|l| collapse_whitespace(l).trim_matches(py_is_space).to_string())
        .collect();
    if cleaned.len() < MIN_CUSTOM_LABELS {
        return Err(Error::Request(format!(
            "labels {labels:?}: expected at least {MIN_CUSTOM_LABELS} labels"
        )));
    }
    if cleaned.iter().any(String::is_empty) {
        return Err(Error::Request(format!(
            "labels {labels:?}: a label is empty"
        )));
    }
    let distinct: std::collections::HashSet<&String> = cleaned.iter().collect();
    if distinct.len() != cleaned.len() {
        return Err(Error::Request(format!(
            "labels {labels:?}: labels must be distinct"
        )));
    }
    Ok(cleaned)
}

/// The classification question for a label set or a custom label list (inserted verbatim: it is the
/// bundle's own text, so the user-text cleaning does not apply).
pub fn label_question(manifest: &Manifest, labels: &Labels) -> Result<String> {
    match labels {
        Labels::Set(name) => manifest
            .label_sets
            .get(name)
            .map(|s| s.question.clone())
            .ok_or_else(|| {
                Error::Request(format!(
                    "unknown label set \"{name}\" (the bundle has {:?})",
                    manifest.label_sets.keys()
                ))
            }),
        Labels::Custom(list) => Ok(manifest
            .custom_label_question
            .replace(PH_LABELS, &join_labels(&clean_labels(list)?))),
    }
}

/// The labels a classification answer is matched against (`reference.py` `label_candidates`): the
/// request's labels, else the set whose question is the given text, else none.
pub fn label_candidates(
    manifest: &Manifest,
    text: Option<&str>,
    labels: Option<&Labels>,
) -> Result<Option<Vec<String>>> {
    let max_words = manifest.prompt.max_words;
    Ok(match (labels, text) {
        (Some(Labels::Set(name)), _) => Some(
            manifest
                .label_sets
                .get(name)
                .map(|s| s.labels.clone())
                .ok_or_else(|| Error::Request(format!("unknown label set \"{name}\"")))?,
        ),
        (Some(Labels::Custom(list)), _) => Some(list.clone()),
        (None, None) => None,
        (None, Some(t)) => {
            let asked = clean_text(t, max_words);
            manifest
                .label_sets
                .values()
                .find(|s| clean_text(&s.question, max_words) == asked)
                .map(|s| s.labels.clone())
        }
    })
}

/// Builds and tokenises the prompt of a request.
pub fn build(manifest: &Manifest, tok: &TextTokenizer, input: &PromptInput) -> Result<Prompt> {
    let name = input.task.name();
    let spec = manifest
        .tasks
        .get(name)
        .ok_or_else(|| Error::Request(format!("the bundle has no task \"{name}\"")))?;
    let instruction = instruction(manifest, input)?;
    let p = &manifest.prompt;
    let mut before = p.bos_ids.clone();
    if spec.image {
        before.extend(tok.encode(&p.image_before)?);
        let after = tok.encode(&p.image_after.replacen(PH_INSTRUCTION, &instruction, 1))?;
        Ok(Prompt {
            before,
            after,
            has_image: true,
            instruction,
        })
    } else {
        before.extend(tok.encode(&p.text_only.replacen(PH_INSTRUCTION, &instruction, 1))?);
        Ok(Prompt {
            before,
            after: Vec::new(),
            has_image: false,
            instruction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_follows_blip_caption_new() {
        assert_eq!(clean_text("  what   is\tthis \n\n", 50), "what is\tthis");
        assert_eq!(clean_text("a\n", 50), "a");
        // A single newline inside is kept; two whitespace characters collapse.
        assert_eq!(clean_text("a\nb \nc", 50), "a\nb c");
        // Python's \s includes U+001F; a run of two collapses.
        assert_eq!(clean_text("a\u{1f}\u{1f}b", 50), "a b");
        let long: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
        let cut = clean_text(&long.join(" "), 50);
        assert_eq!(cut.split(' ').count(), 50);
        assert!(cut.ends_with("w49"));
    }

    #[test]
    fn box_text_truncates_like_python_int() {
        // 0.29 * 100 = 28.999999999999996 in f64: int() gives 28, as the reference does.
        assert_eq!(
            box_text(
                [29.0, 50.0, 99.9, 100.0],
                (100, 100),
                "{<%d><%d><%d><%d>}",
                100
            )
            .unwrap(),
            "{<28><50><99><100>}"
        );
        assert_eq!(
            box_text(
                [10.0, 20.0, 30.0, 40.0],
                (200, 400),
                "{<%d><%d><%d><%d>}",
                100
            )
            .unwrap(),
            "{<5><5><15><10>}"
        );
        assert!(box_text([1.0, 1.0, 2.0, 2.0], (0, 10), "%d%d%d%d", 100).is_err());
        assert!(box_text([5.0, 1.0, 2.0, 2.0], (10, 10), "%d%d%d%d", 100).is_err());
        assert!(box_text([1.0, 1.0, 11.0, 2.0], (10, 10), "%d%d%d%d", 100).is_err());
    }

    #[test]
    fn labels_join_with_a_final_or() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_labels(&l(&["a"])), "a");
        assert_eq!(join_labels(&l(&["a", "b", "c"])), "a, b, or c");
    }
}
