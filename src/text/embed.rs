//! The token embedding table `embed_tokens.f16`: raw little-endian f16 `[vocab, hidden]`, memory-mapped.
//! Rows are converted to f32 on demand straight into the caller's `inputs_embeds` buffer; the table is
//! never copied (only the pages of the rows actually used are read from disk).

use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;

use crate::error::{Error, Result};

/// Bytes per f16 element.
const F16_BYTES: usize = 2;

/// A memory-mapped f16 embedding table.
pub struct EmbedTable {
    map: Mmap,
    path: PathBuf,
    vocab: usize,
    hidden: usize,
}

impl EmbedTable {
    /// Maps `path`, which must hold exactly `vocab * hidden` f16 values.
    pub fn open(path: &Path, vocab: usize, hidden: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the bundle is read-only input; if another process truncates the file while it is
        // mapped, reads fault (SIGBUS). That is the standard memmap trade-off, accepted for weights.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let want = vocab * hidden * F16_BYTES;
        if map.len() != want {
            return Err(Error::Bundle {
                path: path.to_path_buf(),
                field: "embed_tokens.shape".into(),
                message: format!(
                    "[{vocab}, {hidden}] f16 needs {want} bytes, the file has {}",
                    map.len()
                ),
            });
        }
        Ok(EmbedTable {
            map,
            path: path.to_path_buf(),
            vocab,
            hidden,
        })
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Appends the f32 rows of `ids` to `out` (`ids.len() * hidden` floats).
    pub fn append_rows(&self, ids: &[u32], out: &mut Vec<f32>) -> Result<()> {
        out.reserve(ids.len() * self.hidden);
        for &id in ids {
            let id = id as usize;
            if id >= self.vocab {
                return Err(Error::Request(format!(
                    "token id {id} is outside the embedding table {} (vocab {})",
                    self.path.display(),
                    self.vocab
                )));
            }
            let row_bytes = self.hidden * F16_BYTES;
            let bytes = &self.map[id * row_bytes..(id + 1) * row_bytes];
            out.extend(
                bytes
                    .chunks_exact(F16_BYTES)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_little_endian_and_converted() {
        let dir = std::env::temp_dir().join(format!("unimed-embed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.f16");
        // vocab 3, hidden 2: row r = [r + 0.5, -(r as f32)]
        let mut bytes = Vec::new();
        for r in 0..3 {
            for v in [r as f32 + 0.5, -(r as f32)] {
                bytes.extend_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let t = EmbedTable::open(&path, 3, 2).unwrap();
        let mut out = vec![9.0];
        t.append_rows(&[2, 0], &mut out).unwrap();
        assert_eq!(out, vec![9.0, 2.5, -2.0, 0.5, 0.0]);
        assert!(t.append_rows(&[3], &mut out).is_err());
        assert!(EmbedTable::open(&path, 4, 2).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
