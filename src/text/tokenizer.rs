//! The LLaMA SentencePiece-BPE tokenizer (`tokenizer.json`, Hugging Face format) and streaming
//! detokenisation that only ever emits complete UTF-8 text.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What a byte-fallback sequence decodes to while it is still incomplete.
const REPLACEMENT: char = '\u{FFFD}';

/// Tokenizer wrapper: segment encoding without special tokens, and decoding.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    pub fn open(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Ids of one prompt segment: no BOS/EOS (`add_special_tokens = false`); the tokenizer's normalizer
    /// adds the SentencePiece `▁` prefix, as the reference's slow tokenizer does per segment.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: format!("encoding {text:?}: {e}"),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens skipped (the reference decodes with `skip_special_tokens=True`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::Tokenizer {
            path: self.path.clone(),
            message: format!("decoding {ids:?}: {e}"),
        })
    }

    /// The vocabulary piece of one id (for messages and debugging).
    pub fn piece(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Incremental detokeniser. Decodes a small window of recent ids (not the whole sequence) and emits
/// the new suffix once it is valid text, so byte-fallback pieces of one character are held back until
/// the character is complete. `finish` reconciles with a full decode so the streamed text always equals
/// the final text.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    /// Start of the decode window (ids before it are already emitted and never re-decoded).
    prefix_index: usize,
    /// End of the part of the window that is already emitted.
    read_index: usize,
    emitted: String,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one id; returns the newly completed text, if any.
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_index..self.read_index])?;
        let text = tok.decode(&self.ids[self.prefix_index..])?;
        if text.len() > prefix.len() && !text.ends_with(REPLACEMENT) && text.starts_with(&prefix) {
            let new = text[prefix.len()..].to_string();
            self.prefix_index = self.read_index;
            self.read_index = self.ids.len();
            self.emitted.push_str(&new);
            Ok(Some(new))
        } else {
            Ok(None)
        }
    }

    /// Full text of all ids, and whatever of it was not yet emitted (held-back bytes at the end).
    pub fn finish(&mut self, tok: &TextTokenizer) -> Result<(String, Option<String>)> {
        let full = tok.decode(&self.ids)?;
        let rest = full
            .strip_prefix(self.emitted.as_str())
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        if let Some(r) = &rest {
            self.emitted.push_str(r);
        }
        Ok((full, rest))
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
