//! Turning generated text into the task's answer, with the reference's rules (Uni-Med `generate`
//! and `eval_ref.py` / `eval_cls.py`; the Python side is `export/unimed_export/postprocess.py`).
//! The raw decoded text is always kept next to these results.

/// Special-token strings the reference removes from decoded text.
const EOS_TEXT: &str = "</s>";
const BOS_TEXT: &str = "<s>";
const INST_END: &str = "[/INST]";
const UNK_TEXT: &str = "<unk>";

/// The reference's answer cleaning: cut at `</s>`, drop `<s>`, keep what follows the last `[/INST]`,
/// strip surrounding whitespace.
pub fn clean_answer(raw: &str) -> String {
    let head = raw.split(EOS_TEXT).next().unwrap_or("");
    let no_bos = head.replace(BOS_TEXT, "");
    let tail = no_bos.rsplit(INST_END).next().unwrap_or("");
    tail.trim().to_string()
}

/// REC: parses `{<x1><y1><x2><y2>}` at the start of the answer (after removing `<unk>` and every
/// space, as `eval_ref.py`), each value 1-3 digits, and scales it to pixels of the original
/// `width x height` image (`v / box_scale * size`). `None` when the answer is not a box.
pub fn parse_box(answer: &str, size: (u32, u32), box_scale: u32) -> Option<[f64; 4]> {
    let s: String = answer
        .replace(UNK_TEXT, "")
        .chars()
        .filter(|c| *c != ' ')
        .collect();
    let mut rest = s.trim().strip_prefix('{')?;
    let mut v = [0u32; 4];
    for slot in v.iter_mut() {
        rest = rest.strip_prefix('<')?;
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if !(1..=3).contains(&digits) {
            return None;
        }
        *slot = rest[..digits].parse().ok()?;
        rest = rest[digits..].strip_prefix('>')?;
    }
    rest.strip_prefix('}')?;
    let scale = f64::from(box_scale);
    let (w, h) = (f64::from(size.0), f64::from(size.1));
    Some([
        f64::from(v[0]) / scale * w,
        f64::from(v[1]) / scale * h,
        f64::from(v[2]) / scale * w,
        f64::from(v[3]) / scale * h,
    ])
}

/// The eval scripts' normalisation (lower case, `<unk>` removed, stripped) plus dropping a trailing
/// full stop, as `postprocess.py` `_normalise`.
pub fn normalize(answer: &str) -> String {
    answer
        .to_lowercase()
        .replace(UNK_TEXT, "")
        .trim()
        .trim_end_matches('.')
        .trim()
        .to_string()
}

/// Classification (`postprocess.py` `match_label`): an exact match of the normalised answer wins;
/// otherwise the longest label contained in the answer (the first listed on a tie); otherwise none.
pub fn match_label(answer: &str, labels: &[String]) -> Option<String> {
    let a = normalize(answer);
    let normalised: Vec<(String, &String)> = labels.iter().map(|l| (normalize(l), l)).collect();
    if let Some((_, l)) = normalised.iter().find(|(n, _)| !n.is_empty() && *n == a) {
        return Some((*l).clone());
    }
    let mut best: Option<&(String, &String)> = None;
    for entry in &normalised {
        if !entry.0.is_empty()
            && a.contains(&entry.0)
            && best.is_none_or(|b| entry.0.len() > b.0.len())
        {
            best = Some(entry);
        }
    }
    best.map(|(_, l)| (*l).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_cleaning_follows_the_reference() {
        assert_eq!(clean_answer("  liver </s> junk"), "liver");
        assert_eq!(clean_answer("<s>[INST] q [/INST] yes"), "yes");
        assert_eq!(clean_answer(""), "");
    }

    #[test]
    fn boxes_parse_and_scale_to_pixels() {
        assert_eq!(
            parse_box("{<10><20><30><40>}", (200, 100), 100),
            Some([20.0, 20.0, 60.0, 40.0])
        );
        assert_eq!(
            parse_box(" { <1> <2><3><100>} tail", (100, 100), 100),
            Some([1.0, 2.0, 3.0, 100.0])
        );
        assert_eq!(
            parse_box("<unk>{<1><2><3><4>}", (100, 100), 100),
            Some([1.0, 2.0, 3.0, 4.0])
        );
        assert_eq!(parse_box("{<1000><2><3><4>}", (100, 100), 100), None);
        assert_eq!(parse_box("{<1><2><3>}", (100, 100), 100), None);
        assert_eq!(parse_box("a {<1><2><3><4>}", (100, 100), 100), None);
    }

    #[test]
    fn labels_match_after_normalisation() {
        let labels = vec!["left lung".to_string(), "liver".to_string()];
        assert_eq!(match_label(" Liver<unk>. ", &labels), Some("liver".into()));
        assert_eq!(match_label("the liver", &labels), Some("liver".into()));
        let nested = vec!["kidney".to_string(), "left kidney".to_string()];
        assert_eq!(
            match_label("it is the left kidney", &nested),
            Some("left kidney".into())
        );
        assert_eq!(match_label("spleen", &labels), None);
    }
}
