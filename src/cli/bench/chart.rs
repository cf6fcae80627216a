//! An SVG chart of the per-stage breakdown of each task: one horizontal bar per task, stacked from the
//! stage medians (decode = mean step × generated tokens), so where a request's time goes is visible at
//! a glance. Plain SVG text, no dependency.

use std::fmt::Write as _;

use super::report::{BenchReport, TaskReport};

/// Stage name and colour, in request order.
const STAGES: [(&str, &str); 8] = [
    ("input decode", "#8c564b"),
    ("preprocess", "#e377c2"),
    ("vision", "#1f77b4"),
    ("connector", "#ff7f0e"),
    ("prompt", "#7f7f7f"),
    ("prefill", "#2ca02c"),
    ("decode", "#d62728"),
    ("detokenize", "#9467bd"),
];
const BAR_HEIGHT: f64 = 26.0;
const BAR_GAP: f64 = 14.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const PLOT_WIDTH: f64 = 640.0;
const LEGEND_HEIGHT: f64 = 50.0;

/// Median milliseconds of each stage of `t`, in [`STAGES`] order.
fn stage_ms(t: &TaskReport) -> [f64; 8] {
    let p50 = |s: &Option<super::stats::Summary>| s.map(|v| v.p50).unwrap_or(0.0);
    let tokens = t.generated_tokens.iter().copied().min().unwrap_or(0);
    // A run of N tokens has N - 1 decode steps (the first token comes from the prefill).
    let decode = t
        .decode_ms_per_token
        .map(|d| d.mean * tokens.saturating_sub(1) as f64)
        .unwrap_or(0.0);
    [
        p50(&t.input_decode_ms),
        p50(&t.preprocess_ms),
        p50(&t.vision_ms),
        p50(&t.connector_ms),
        p50(&t.prompt_ms),
        p50(&t.prefill_ms),
        decode,
        p50(&t.detokenize_ms),
    ]
}

/// The chart as an SVG document.
pub fn svg(r: &BenchReport) -> String {
    let rows: Vec<(&str, [f64; 8])> = r
        .tasks
        .iter()
        .map(|t| (t.task.as_str(), stage_ms(t)))
        .collect();
    let max_total = rows
        .iter()
        .map(|(_, s)| s.iter().sum::<f64>())
        .fold(0.0, f64::max)
        .max(1e-9);
    let height = TOP + rows.len() as f64 * (BAR_HEIGHT + BAR_GAP) + LEGEND_HEIGHT;
    let width = LEFT + PLOT_WIDTH + 90.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14">Per-stage time per request (ms, medians) - {} ({} decoder, {} new tokens)</text>"#,
        xml_escape(&r.bundle),
        xml_escape(&r.decoder_precision),
        r.settings.new_tokens
    );
    for (i, (task, stages)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * (BAR_HEIGHT + BAR_GAP);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + BAR_HEIGHT * 0.65,
            xml_escape(task)
        );
        let mut x = LEFT;
        for ((name, colour), v) in STAGES.iter().zip(stages) {
            let w = v / max_total * PLOT_WIDTH;
            if w > 0.0 {
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{BAR_HEIGHT}" fill="{colour}"><title>{name}: {v:.1} ms</title></rect>"#
                );
            }
            x += w;
        }
        let total: f64 = stages.iter().sum();
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{:.2}">{total:.0} ms</text>"#,
            x + 6.0,
            y + BAR_HEIGHT * 0.65
        );
    }
    let legend_y = TOP + rows.len() as f64 * (BAR_HEIGHT + BAR_GAP) + 10.0;
    for (i, (name, colour)) in STAGES.iter().enumerate() {
        let x = LEFT + (i % 4) as f64 * 160.0;
        let y = legend_y + (i / 4) as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{name}</text>"#,
            x + 16.0,
            y + 10.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
