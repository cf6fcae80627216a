//! `unimed verify`: the manifest against its seal (`unimed.json.sha256`), then every file of a bundle against
//! the size and sha256 the manifest records. Run it after copying a bundle to a device; every file's state is
//! reported (text or `--json`, also on failure), and any problem exits with the model code (4).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use unimed_edge::bundle::{FileState, SealState, MANIFEST_FILE, SEAL_FILE};
use unimed_edge::{verify, Bundle, VerifyReport};

use super::exit_codes::Exit;
use super::model_arg::ModelArg;
use super::output::{human_bytes, Style};

/// Hex digits of the bundle identity in one-line summaries (like a short git commit).
const SHORT_ID_LEN: usize = 12;

const EXAMPLES: &str = "\
Examples:
  unimed verify --model models/tiny
  unimed verify --model /data/unimed-7b-int4 --json | jq '.files[] | select(.ok | not)'";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct VerifyArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let dir = args.model.dir()?;
    // Only the manifest must be readable: every file's state is then reported, none stops the walk.
    let bundle = Bundle::load_manifest(&dir)?;
    let report = verify(&bundle)?;
    if args.json {
        println!("{}", report_json(&bundle, &report));
    } else {
        print_text(&report);
    }
    if report.ok() {
        return Ok(Exit::Ok.into());
    }
    let mut bad: Vec<String> = report
        .mismatches()
        .map(|f| format!("{} ({})", f.name, f.state.name().replace('_', " ")))
        .collect();
    if report.seal != SealState::Match {
        bad.insert(0, format!("{MANIFEST_FILE} ({})", seal_words(&report.seal)));
    }
    eprintln!(
        "unimed: error: {}: {} (re-copy or re-export the bundle)",
        bundle.dir().display(),
        bad.join(", ")
    );
    Ok(Exit::Model.into())
}

fn seal_words(seal: &SealState) -> String {
    match seal {
        SealState::Match => "matches its seal".into(),
        SealState::Missing => format!("no seal {SEAL_FILE}"),
        SealState::Unreadable(why) => format!("seal {SEAL_FILE} unreadable: {why}"),
        SealState::Differs { recorded } => {
            format!("changed after export: its seal {SEAL_FILE} records {recorded}")
        }
    }
}

fn seal_name(seal: &SealState) -> &'static str {
    match seal {
        SealState::Match => "ok",
        SealState::Missing => "missing",
        SealState::Unreadable(_) => "unreadable",
        SealState::Differs { .. } => "sha256_mismatch",
    }
}

fn report_json(bundle: &Bundle, report: &VerifyReport) -> serde_json::Value {
    let files: Vec<_> = report
        .files
        .iter()
        .map(|f| {
            let (actual_size, actual_sha256, reason) = match &f.state {
                FileState::Ok => (Some(f.size), Some(f.expected_sha256.clone()), None),
                FileState::Missing => (None, None, None),
                FileState::WrongSize { actual } => (Some(*actual), None, None),
                FileState::Mismatch { actual_sha256 } => {
                    (Some(f.size), Some(actual_sha256.clone()), None)
                }
                FileState::Unreadable(why) => (None, None, Some(why.clone())),
            };
            json!({"file": f.name, "state": f.state.name(), "ok": f.ok(), "size": f.size,
                   "actual_size": actual_size, "expected_sha256": f.expected_sha256,
                   "actual_sha256": actual_sha256, "reason": reason, "seconds": f.elapsed.as_secs_f64()})
        })
        .collect();
    let recorded = match &report.seal {
        SealState::Match => Some(report.manifest_sha256.clone()),
        SealState::Differs { recorded } => Some(recorded.clone()),
        _ => None,
    };
    json!({
        "bundle": bundle.dir(), "ok": report.ok(),
        "manifest": {"file": MANIFEST_FILE, "sha256": report.manifest_sha256, "seal": SEAL_FILE,
                     "state": seal_name(&report.seal), "sealed_sha256": recorded},
        "files": files, "total_bytes": report.total_bytes,
        "seconds": report.elapsed.as_secs_f64(), "mb_per_s": report.mb_per_s(),
    })
}

fn print_text(report: &VerifyReport) {
    let s = Style::stdout();
    let tag = |ok: bool, bad: &str| {
        if ok {
            s.ok(&format!("{:<8}", "ok"))
        } else {
            s.error(&format!("{bad:<8}"))
        }
    };
    let sealed = report.seal == SealState::Match;
    println!(
        "{}  {:<28} {:>10}  sha256 {} ({})",
        tag(sealed, "MANIFEST"),
        MANIFEST_FILE,
        "",
        report.manifest_sha256,
        seal_words(&report.seal)
    );
    for f in &report.files {
        let detail = match &f.state {
            FileState::Ok => format!("sha256 {}", f.expected_sha256),
            FileState::Missing => "missing".to_string(),
            FileState::WrongSize { actual } => format!(
                "{} on disk, the manifest records {}",
                human_bytes(*actual),
                human_bytes(f.size)
            ),
            FileState::Mismatch { actual_sha256 } => format!(
                "sha256 {actual_sha256} (manifest says {})",
                f.expected_sha256
            ),
            FileState::Unreadable(why) => format!("cannot be read: {why}"),
        };
        let label = match f.state {
            FileState::Missing => "MISSING",
            FileState::WrongSize { .. } => "SIZE",
            FileState::Unreadable(_) => "UNREADABLE",
            _ => "MISMATCH",
        };
        println!(
            "{}  {:<28} {:>10}  {detail}",
            tag(f.ok(), label),
            f.name,
            human_bytes(f.size)
        );
    }
    let bad = report.mismatches().count() + usize::from(!sealed);
    eprintln!(
        "verify: bundle {} ({}); {} files, {} hashed in {:.2} s ({:.0} MB/s): {}",
        short_id(&report.manifest_sha256),
        if sealed { "sealed" } else { "NOT sealed" },
        report.files.len() + 1,
        human_bytes(report.total_bytes),
        report.elapsed.as_secs_f64(),
        report.mb_per_s(),
        if bad == 0 {
            "all match".to_string()
        } else {
            format!("{bad} do not match")
        }
    );
}

/// The first 12 hex digits of a bundle identity, as people quote it.
pub fn short_id(sha256: &str) -> &str {
    sha256.get(..SHORT_ID_LEN).unwrap_or(sha256)
}
