//! `--dump-tensors DIR`: intermediate tensors as NumPy `.npy` files (format version 1.0, little-endian
//! f32, C order), named as the reference's `--dump` so the two can be compared file by file.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

const NPY_MAGIC: &[u8] = b"\x93NUMPY";
const NPY_VERSION: [u8; 2] = [1, 0];
/// Magic (6) + version (2) + header length (2).
const NPY_PREAMBLE: usize = 10;
/// The header (preamble included) is padded with spaces to a multiple of this, ending in '\n'.
const NPY_ALIGN: usize = 64;

/// The bytes of an `.npy` file holding `data` with `shape`.
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    let total = NPY_PREAMBLE + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(NPY_ALIGN) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(NPY_PREAMBLE + header.len() + data.len() * 4);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&NPY_VERSION);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `DIR/NAME.npy`, creating `DIR`.
pub fn write_npy(dir: &Path, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(format!("{name}.npy"));
    let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    f.write_all(&npy_bytes(shape, data))
        .map_err(|e| Error::io(&path, e))
}

/// Reads an f32 (`<f4`, C order) `.npy` file: shape and data. Used by tests comparing with the
/// reference's dumps.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::Tensor {
        stage: "npy".into(),
        tensor: path.display().to_string(),
        expected: "a version 1/2 .npy of little-endian f32 in C order".into(),
        actual: m.to_string(),
    };
    if bytes.len() < NPY_PREAMBLE || &bytes[..6] != NPY_MAGIC {
        return Err(bad("no NUMPY magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (
            u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
            NPY_PREAMBLE,
        ),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("version {v}"))),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + hlen)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|_| bad("header not UTF-8"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad(header.trim()));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|r| r.split('(').nth(1))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let data: Vec<f32> = bytes[start + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if data.len() != shape.iter().product::<usize>() {
        return Err(bad(&format!("{} values for shape {shape:?}", data.len())));
    }
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_round_trips() {
        let b = npy_bytes(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((NPY_PREAMBLE + hlen) % NPY_ALIGN, 0);
        assert_eq!(b[NPY_PREAMBLE + hlen - 1], b'\n');
        assert!(std::str::from_utf8(&b[10..10 + hlen])
            .unwrap()
            .contains("'shape': (2, 3)"));
        let dir = std::env::temp_dir().join(format!("unimed-npy-{}", std::process::id()));
        write_npy(&dir, "x", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let (shape, data) = read_npy(&dir.join("x.npy")).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        write_npy(&dir, "v", &[4], &[0.0; 4]).unwrap();
        assert_eq!(read_npy(&dir.join("v.npy")).unwrap().0, vec![4]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
