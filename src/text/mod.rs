//! Text side of a request: tokenizer, prompt assembly, and the memory-mapped token embedding table.

pub mod embed;
pub mod prompt;
pub mod tokenizer;
