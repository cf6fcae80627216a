//! The `unimed` command line (clap). One file per subcommand; `anyhow` is used here and in `main.rs`
//! only.

mod atomic;
mod batch;
mod bench;
mod dicom_out;
mod draw;
mod ep_flags;
pub mod exit_codes;
mod hash;
mod info;
mod input_flags;
mod load;
mod model_arg;
pub mod output;
mod record;
mod results;
mod run;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// How clap starts an error message; `unimed: error: ` replaces it.
const CLAP_ERROR_PREFIX: &str = "error: ";

const EXAMPLES: &str = "\
Examples:
  unimed run --task vqa --image ct.dcm \"Is there a pleural effusion?\"
  unimed run --task rec --image chest.png --draw boxed.png \"left lung\"
  unimed run --task cls --image skin.jpg --label-set dermamnist --json | jq .label
  unimed batch worklist.jsonl --out results.jsonl
  unimed info --json
  unimed verify --model /data/unimed-7b-int4

The bundle: --model DIR, else $UNIMED_MODEL, else models/tiny (built by scripts/setup).
Output: results on stdout (text, or one JSON object with --json); progress and timings on stderr.
Colour only on a terminal, never with NO_COLOR set.

Exit codes: 0 ok, 1 internal error, 2 usage (bad flag or request), 3 input (image, DICOM or worklist),
4 model bundle (missing, invalid, or verify mismatch), 5 ONNX Runtime, 6 output file not writable,
7 batch finished with error records. See docs/CLI.md.";

/// Offline Uni-Med inference on ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "unimed", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one request on a bundle and print the answer.
    Run(run::RunArgs),
    /// Run every request of a worklist (.jsonl), appending one result record each; resumable.
    Batch(batch::BatchArgs),
    /// Show a bundle's manifest and graphs, and what this ONNX Runtime offers.
    Info(info::InfoArgs),
    /// Check every file of a bundle against its recorded size and sha256.
    Verify(verify::VerifyArgs),
    /// Measure per-task latency, throughput and memory on a bundle (docs/PERFORMANCE.md).
    Bench(bench::BenchArgs),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed.
        Err(e) if !e.use_stderr() => {
            e.print()?;
            return Ok(ExitCode::SUCCESS);
        }
        // One prefix for every error (`unimed: error:`, printed by main), clap's included.
        Err(e) => {
            let text = e.render().to_string();
            let text = text.trim_end();
            return Err(exit_codes::fail(
                exit_codes::Exit::Usage,
                text.strip_prefix(CLAP_ERROR_PREFIX).unwrap_or(text),
            ));
        }
    };
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Batch(args) => batch::run(args),
        Command::Info(args) => info::run(args),
        Command::Verify(args) => verify::run(args),
    }
}
