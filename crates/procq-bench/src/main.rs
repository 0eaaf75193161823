//! `procq-bench`: runs the procq benchmark suite and prints its table.
//! `procq bench` is the same command (one argument set,
//! `procq_bench::BenchArgs`).
//!
//! The same binary doubles as the suite's worker processes (see
//! `procq_bench::run_worker_if_requested`).

use std::process::ExitCode;

use clap::Parser;

/// Benchmarks procq against a Unix socket, ipc-channel, ipmpsc, iceoryx2,
/// crossbeam-channel and memcpy, with the same items in the same run.
#[derive(Parser)]
#[command(name = "procq-bench", version, after_help = procq_bench::EXIT_STATUS)]
struct Cli {
    #[command(flatten)]
    bench: procq_bench::BenchArgs,
}

fn main() -> ExitCode {
    if let Some(code) = procq_bench::run_worker_if_requested() {
        return code;
    }
    Cli::parse().bench.run("procq-bench")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_argument_set_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let a = Cli::try_parse_from(
            "x --quick --json-out r.json --plot r.svg --filter 8B --runs 5 --targets"
                .split_whitespace(),
        )
        .unwrap()
        .bench;
        assert!(a.quick && a.targets);
        assert_eq!(a.json_out.unwrap().to_str(), Some("r.json"));
        assert_eq!(a.plot.unwrap().to_str(), Some("r.svg"));
        assert_eq!(a.filter.as_deref(), Some("8B"));
        assert_eq!(a.runs, Some(5));
    }

    #[test]
    fn bad_usage_is_an_error() {
        for bad in ["x --json-out", "x --runs 0", "x --bogus", "x --json r.json"] {
            assert!(
                Cli::try_parse_from(bad.split_whitespace()).is_err(),
                "{bad}"
            );
        }
    }
}
