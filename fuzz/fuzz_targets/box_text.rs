//! Box text both ways: the REG prompt's `box_text` (pixel box → `{<x1><y1><x2><y2>}`) and the REC
//! answer parser `parse_box` (model text → pixel box). Properties: no panic; a parsed box is finite and
//! inside `[0, 999 / scale × size]`; and what `box_text` writes, `parse_box` reads back as the truncated
//! values it wrote.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use unimed_edge::postprocess::parse_box;
use unimed_edge::text::prompt::box_text;

/// The bundles' box format and scale (docs/BUNDLE.md `prompt`).
const BOX_FORMAT: &str = "{<%d><%d><%d><%d>}";
/// Largest value `parse_box` accepts (three digits).
const MAX_PARSED: f64 = 999.0;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    answer: &'a str,
    bbox: [f64; 4],
    width: u32,
    height: u32,
    scale: u16,
}

fuzz_target!(|input: Input| {
    let size = (input.width, input.height);
    let scale = u32::from(input.scale.max(1));
    if let Some(b) = parse_box(input.answer, size, scale) {
        let limits = [size.0, size.1, size.0, size.1].map(|s| MAX_PARSED / f64::from(scale) * f64::from(s));
        for (v, lim) in b.iter().zip(limits) {
            assert!(v.is_finite() && *v >= 0.0 && *v <= lim, "parsed {b:?} from {:?}", input.answer);
        }
    }
    // Only boxes inside the image are accepted, so every value written is in 0..=scale: with three
    // digits at most, the parser must read back exactly the truncated values.
    if f64::from(scale) > MAX_PARSED {
        return;
    }
    if let Ok(text) = box_text(input.bbox, size, BOX_FORMAT, scale) {
        let parsed = parse_box(&text, size, scale);
        let s = f64::from(scale);
        let dims = [size.0, size.1, size.0, size.1].map(f64::from);
        let expected: Vec<f64> =
            input.bbox.iter().zip(dims).map(|(v, d)| (v / d * s).trunc() / s * d).collect();
        assert_eq!(parsed.map(|p| p.to_vec()), Some(expected), "box_text wrote {text:?}");
    }
});
