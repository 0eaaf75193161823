//! The command line of the suite, shared by the `procq-bench` binary and
//! `procq bench`: one clap argument set ([`BenchArgs`]) and one driver
//! ([`BenchArgs::run`]) with the progress bar, so that the two cannot
//! drift apart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::options::{Options, Progress};

/// Arguments of `procq-bench` and `procq bench`.
///
/// ```
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     bench: procq_bench::BenchArgs,
/// }
///
/// let cli = Cli::parse_from(["x", "--quick", "--filter", "1p1c/8B", "--json-out", "r.json"]);
/// assert!(cli.bench.quick && !cli.bench.targets);
/// assert_eq!(cli.bench.json_out.unwrap().to_str(), Some("r.json"));
/// ```
#[derive(Debug, Clone, Default, Args)]
pub struct BenchArgs {
    /// Smoke run: a few thousand items per case, one run each (seconds in
    /// all; rough figures).
    #[arg(long)]
    pub quick: bool,
    /// Write the whole report (every case and target) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Write an SVG chart of the report to FILE.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Only the cases whose id contains SUBSTR, or one of several
    /// comma-separated SUBSTRs (see --list).
    #[arg(long, value_name = "SUBSTR")]
    pub filter: Option<String>,
    /// Measured runs per case; the median is reported [default: 3; 1 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: Option<u64>,
    /// Print the case ids and exit.
    #[arg(long)]
    pub list: bool,
    /// Also print the table of the "Performance" issue's targets (met or
    /// not); it is always in the JSON report.
    #[arg(long)]
    pub targets: bool,
}

/// The help text's closing paragraph: what the exit status means.
pub const EXIT_STATUS: &str = "\
Exit status: 0 every case ran; 1 a case failed or a queue segment was left \
in /dev/shm (targets that are not met never fail the run); 2 bad usage.

The table goes to stdout, progress to stderr (a bar with elapsed time and \
ETA on a terminal, one line per case otherwise).";

impl BenchArgs {
    /// The [`Options`] these arguments ask for.
    ///
    /// ```
    /// let args = procq_bench::BenchArgs { quick: true, runs: Some(2), ..Default::default() };
    /// let opts = args.options();
    /// assert!(opts.quick && opts.runs == Some(2));
    /// ```
    pub fn options(&self) -> Options {
        Options {
            quick: self.quick,
            filter: self.filter.clone(),
            runs: self.runs.map(|n| n as usize),
            worker_exe: None,
        }
    }

    /// Runs what the arguments ask (the suite, or `--list`), prints the
    /// table and writes the files; returns the exit status.
    ///
    /// The running binary must call [`run_worker_if_requested`](crate::run_worker_if_requested)
    /// first thing in `main`: the workers are re-executions of it.
    pub fn run(&self, program: &str) -> ExitCode {
        if self.list {
            for id in crate::case::case_ids() {
                println!("{id}");
            }
            return ExitCode::SUCCESS;
        }
        if let Some(f) = &self.filter {
            if !crate::case::case_ids()
                .iter()
                .any(|id| crate::options::selects(f, id))
            {
                eprintln!("{program}: no case matches --filter {f:?} (see --list)");
                return ExitCode::from(2);
            }
        }
        let report = with_progress(&self.options());
        if self.targets {
            println!("{}", report.to_table_with_targets());
        } else {
            println!("{}", report.to_table());
        }
        let mut ok = report.errors.is_empty() && report.leaked_segments.is_empty();
        if let Some(path) = &self.json_out {
            let written = serde_json::to_string_pretty(&report)
                .map_err(std::io::Error::other)
                .and_then(|json| std::fs::write(path, json + "\n"));
            if let Err(e) = written {
                eprintln!("{program}: writing {}: {e}", path.display());
                ok = false;
            }
        }
        if let Some(path) = &self.plot {
            if let Err(e) = report.write_svg(path) {
                eprintln!("{program}: writing {}: {e}", path.display());
                ok = false;
            }
        }
        if !report.errors.is_empty() {
            eprintln!("{program}: {} case(s) failed", report.errors.len());
        }
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Runs the suite with a progress bar on stderr (elapsed time, cases done,
/// ETA, the case running) when stderr is a terminal, and one line per case
/// otherwise (logs, pipes).
fn with_progress(opts: &Options) -> crate::model::Report {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "[{elapsed_precise}] {bar:30} {pos}/{len} cases, ETA {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(500));
    let plain = bar.is_hidden();
    let report = crate::suite::run(opts, &mut |p| {
        if plain {
            eprintln!("{p}");
        }
        match p {
            Progress::Started { case, index, total } => {
                bar.set_length(total as u64);
                bar.set_position(index as u64);
                bar.set_message(case);
            }
            Progress::Finished { case, summary } => {
                bar.inc(1);
                bar.println(format!("{case}: {summary}"));
            }
            Progress::Failed { case, error } => {
                bar.inc(1);
                bar.println(format!("{case}: FAILED: {error}"));
            }
        }
    });
    bar.finish_and_clear();
    report
}
