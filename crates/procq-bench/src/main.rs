//! `procq-bench`: runs the procq benchmark suite and prints its table.
//!
//! ```text
//! procq-bench [--quick] [--json FILE] [--plot FILE.svg] [--filter SUBSTR] [--runs N] [--list]
//! ```
//!
//! The same binary doubles as the suite's worker processes (see
//! `procq_bench::run_worker_if_requested`).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: procq-bench [options]

Benchmarks procq against a Unix socket, ipc-channel, crossbeam-channel and
memcpy, and checks the targets of the \"Performance\" issue.

options:
  --quick          a few thousand items per case (seconds in all): a smoke test
  --json FILE      also write the report as JSON
  --plot FILE      also write an SVG chart of the report
  --filter SUBSTR  only cases whose id contains SUBSTR (see --list)
  --runs N         measured runs per case, median reported (default 3; quick 1)
  --list           print the case ids and exit
  -h, --help       this text

exit status: 0 when every case ran, 1 when a case failed or a queue segment
leaked, 2 on bad usage. Targets that are not met do not fail the run.";

struct Args {
    opts: procq_bench::Options,
    json: Option<PathBuf>,
    plot: Option<PathBuf>,
    list: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut out = Args {
        opts: procq_bench::Options::default(),
        json: None,
        plot: None,
        list: false,
    };
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--quick" => out.opts.quick = true,
            "--json" => out.json = Some(value("--json")?.into()),
            "--plot" => out.plot = Some(value("--plot")?.into()),
            "--filter" => out.opts.filter = Some(value("--filter")?),
            "--runs" => {
                let v = value("--runs")?;
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--runs wants a positive number, not {v:?}"))?;
                out.opts.runs = Some(n);
            }
            "--list" => out.list = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(out))
}

fn main() -> ExitCode {
    if let Some(code) = procq_bench::run_worker_if_requested() {
        return code;
    }
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("procq-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for id in procq_bench::case_ids() {
            println!("{id}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(f) = &args.opts.filter {
        if !procq_bench::case_ids().iter().any(|id| id.contains(f)) {
            eprintln!("procq-bench: no case matches --filter {f:?} (see --list)");
            return ExitCode::from(2);
        }
    }
    let report = procq_bench::run(&args.opts, &mut |p| eprintln!("{p}"));
    println!("{}", report.to_table());
    let mut ok = report.errors.is_empty() && report.leaked_segments.is_empty();
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json + "\n"));
        if let Err(e) = written {
            eprintln!("procq-bench: writing {}: {e}", path.display());
            ok = false;
        }
    }
    if let Some(path) = &args.plot {
        if let Err(e) = report.write_svg(path) {
            eprintln!("procq-bench: writing {}: {e}", path.display());
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_parse() {
        let a = args("--quick --json r.json --plot r.svg --filter 8B --runs 5")
            .unwrap()
            .unwrap();
        assert!(a.opts.quick);
        assert_eq!(a.json.unwrap(), PathBuf::from("r.json"));
        assert_eq!(a.plot.unwrap(), PathBuf::from("r.svg"));
        assert_eq!(a.opts.filter.as_deref(), Some("8B"));
        assert_eq!(a.opts.runs, Some(5));
    }

    #[test]
    fn bad_usage_is_an_error() {
        assert!(args("--json").is_err());
        assert!(args("--runs 0").is_err());
        assert!(args("--bogus").is_err());
        assert!(args("--help").unwrap().is_none());
    }
}
