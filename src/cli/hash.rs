//! sha256 of files, the identity of inputs and bundles in result records.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Read size: large enough that syscalls do not dominate on big multi-frame files.
const CHUNK_BYTES: usize = 1 << 20;

/// Lower-case hex sha256 and size of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() -> std::io::Result<()> {
        let p = std::env::temp_dir().join(format!("unimed-hash-{}", std::process::id()));
        std::fs::write(&p, b"abc")?;
        let (h, n) = sha256_file(&p)?;
        std::fs::remove_file(&p)?;
        assert_eq!(n, 3);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        Ok(())
    }
}
