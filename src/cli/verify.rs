//! `unimed verify`: every file of a bundle against the size and sha256 its manifest records. Run it after
//! copying a bundle to a device; a mismatch exits with the model code (4) and names each bad file.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use unimed_edge::{verify, Bundle};

use super::exit_codes::Exit;
use super::model_arg::ModelArg;
use super::output::{human_bytes, Style};

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
    // Loading checks the manifest and every file's size; hashing then reads every byte.
    let bundle = Bundle::load(&dir)?;
    let report = verify(&bundle)?;
    let ok = report.ok();
    if args.json {
        let files: Vec<_> = report
            .files
            .iter()
            .map(|f| {
                json!({"file": f.name, "size": f.size, "ok": f.ok(), "expected_sha256": f.expected_sha256,
                       "actual_sha256": f.actual_sha256, "seconds": f.elapsed.as_secs_f64()})
            })
            .collect();
        let summary = json!({
            "bundle": bundle.dir(), "ok": ok, "files": files, "total_bytes": report.total_bytes,
            "seconds": report.elapsed.as_secs_f64(), "mb_per_s": report.mb_per_s(),
        });
        println!("{summary}");
    } else {
        let s = Style::stdout();
        for f in &report.files {
            if f.ok() {
                println!(
                    "{}  {:<28} {:>10}  sha256 {}",
                    s.ok("ok      "),
                    f.name,
                    human_bytes(f.size),
                    f.actual_sha256
                );
            } else {
                println!(
                    "{}  {:<28} {:>10}  sha256 {} (manifest says {})",
                    s.error("MISMATCH"),
                    f.name,
                    human_bytes(f.size),
                    f.actual_sha256,
                    f.expected_sha256
                );
            }
        }
        let bad = report.mismatches().count();
        eprintln!(
            "verify: {} files, {} in {:.2} s ({:.0} MB/s): {}",
            report.files.len(),
            human_bytes(report.total_bytes),
            report.elapsed.as_secs_f64(),
            report.mb_per_s(),
            if ok {
                "all match".to_string()
            } else {
                format!("{bad} do not match the manifest")
            }
        );
    }
    if ok {
        Ok(Exit::Ok.into())
    } else {
        let names: Vec<&str> = report.mismatches().map(|f| f.name.as_str()).collect();
        eprintln!(
            "unimed: error: {}: sha256 mismatch in {} (re-copy or re-export the bundle)",
            bundle.dir().display(),
            names.join(", ")
        );
        Ok(Exit::Model.into())
    }
}
