//! `procq`: see, manage, pipe and benchmark procq queues from the shell —
//! what `ipcs`/`ipcrm` are for System V IPC and `redis-cli` for Redis.
//!
//! Every figure comes from the core crate's public API (`procq::stats`,
//! `procq::list`, ...): nothing here parses shared memory itself.
//!
//! Wherever a queue name goes, a Redis queue URL
//! (`redis://[user:password@]host:port/db/name`) may go instead (cargo
//! feature `redis`, on by default). Messages show such URLs without their
//! password.

mod demo;
mod inspect;
mod pipe;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See, manage, pipe and benchmark procq queues.
///
/// A queue is named by its shared-memory name or by a Redis URL:
/// redis://[user:password@]host:port/db/name.
///
/// Exit codes: 0 success; 1 the operation failed (timed out, queue in use,
/// I/O error); 2 bad usage, invalid name, or no such queue.
#[derive(Parser)]
#[command(name = "procq", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every procq queue on this machine, or in one Redis database.
    ///
    /// Example: procq ls --json | jq '.[] | select(.items > 0) | .name'
    ///
    /// Example: procq ls redis://127.0.0.1:6379/0
    Ls {
        /// A Redis database, redis://[user:password@]host:port/db: list its
        /// queues instead (columns that only shared memory has show "-").
        server: Option<String>,
        /// Machine-readable output (a JSON array, one object per queue).
        #[arg(long)]
        json: bool,
    },
    /// Show one queue in detail, with its counters.
    ///
    /// Example: procq stat jobs --watch
    Stat {
        /// Queue name or redis:// URL.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Redraw every second with live rates (items/s in and out) until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// With --watch: stop after this many redraws.
        #[arg(long, hide = true)]
        count: Option<u64>,
    },
    /// Remove a queue; refuses while live processes use it unless --force.
    ///
    /// A Redis queue (URL) is removed at once, with all its items: there is
    /// no liveness check, and --force is not needed.
    ///
    /// Example: procq rm jobs
    Rm {
        /// Queue name or redis:// URL.
        name: String,
        /// Remove even while processes are attached (they keep their
        /// mapping). Not needed for a redis:// URL.
        #[arg(long)]
        force: bool,
    },
    /// Remove the queues whose processes are all dead.
    ///
    /// Example: procq gc --dry-run
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create a persistent queue that lives until `procq rm`.
    ///
    /// A Redis queue (URL) lives on its server until `procq rm`.
    ///
    /// Example: procq create jobs --maxsize 1000
    ///
    /// Example: procq create redis://127.0.0.1:6379/0/jobs --maxsize 1000
    Create {
        /// Queue name or redis:// URL.
        name: String,
        /// Item bound; 0 = unbounded.
        #[arg(long, default_value_t = 0)]
        maxsize: usize,
        /// A JoinableQueue (gets count as tasks).
        #[arg(long)]
        joinable: bool,
    },
    /// Put items read from stdin: one per line, or all of it as one with --raw.
    ///
    /// Example: seq 10 | procq put jobs --create
    ///
    /// Example: seq 10 | procq put redis://127.0.0.1:6379/0/jobs --create
    Put {
        /// Queue name or redis:// URL.
        name: String,
        /// Create the queue (persistent) if it does not exist.
        #[arg(long)]
        create: bool,
        /// With --create: item bound; 0 = unbounded.
        #[arg(long, default_value_t = 0)]
        maxsize: usize,
        /// Put the whole input as one item.
        #[arg(long)]
        raw: bool,
        /// Give up (exit 1) if the queue stays full this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Get items and print them, one per line.
    ///
    /// Example: procq get jobs -n 10 --timeout 5
    Get {
        /// Queue name or redis:// URL.
        name: String,
        /// How many items to get.
        #[arg(short = 'n', long, default_value_t = 1)]
        count: u64,
        /// Give up (exit 1) if no item arrives for this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// Keep getting items until interrupted.
        #[arg(long)]
        follow: bool,
        /// Print each item's stored bytes as they are, without decoding.
        #[arg(long)]
        raw: bool,
    },
    /// Run the article's token counter and producer–consumer across processes.
    ///
    /// Example: procq demo
    Demo,
    /// Run the benchmark suite and print its table.
    ///
    /// Example: procq bench --quick --json bench.json --plot bench.svg
    Bench {
        /// Smoke run: seconds, rough figures.
        #[arg(long)]
        quick: bool,
        /// Write the report as JSON.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Write the chart as SVG.
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
        /// Only cases whose id contains this.
        #[arg(long)]
        filter: Option<String>,
    },
}

/// A failed command: its exit code and the message for stderr.
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Exit 1: the operation failed.
    pub(crate) fn op(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// Exit 2: bad usage or no such queue.
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

/// Whether `name` is a Redis queue (or server) URL rather than a
/// shared-memory queue name.
pub(crate) fn is_url(name: &str) -> bool {
    name.starts_with("redis://") || name.starts_with("rediss://")
}

/// `name` fit for output: a URL's password replaced by `***` (the core's
/// `display_name` does the same for an open queue).
pub(crate) fn shown(name: &str) -> String {
    let Some((scheme, rest)) = name.split_once("://").filter(|_| is_url(name)) else {
        return name.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split_once(':').map_or(&rest[..at], |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => name.to_owned(),
    }
}

impl From<procq::Error> for Failure {
    fn from(e: procq::Error) -> Failure {
        match e {
            procq::Error::NotFound(_)
            | procq::Error::InvalidName { .. }
            | procq::Error::AlreadyExists(_) => Failure::usage(e.to_string()),
            _ => Failure::op(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::op(e.to_string())
    }
}

fn main() -> ExitCode {
    // A re-executed child of `procq demo` runs its target here and exits;
    // so does a worker of `procq bench`.
    procq::init();
    if let Some(code) = procq_bench::run_worker_if_requested() {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { server, json } => inspect::ls(server.as_deref(), json),
        Command::Stat {
            name,
            json,
            watch,
            count,
        } => inspect::stat(&name, json, watch, count),
        Command::Rm { name, force } => inspect::rm(&name, force),
        Command::Gc { dry_run } => inspect::gc(dry_run),
        Command::Create {
            name,
            maxsize,
            joinable,
        } => inspect::create(&name, maxsize, joinable),
        Command::Put {
            name,
            create,
            maxsize,
            raw,
            timeout,
        } => pipe::put(&name, create, maxsize, raw, timeout),
        Command::Get {
            name,
            count,
            timeout,
            follow,
            raw,
        } => pipe::get(&name, count, timeout, follow, raw),
        Command::Demo => demo::run(),
        Command::Bench {
            quick,
            json,
            plot,
            filter,
        } => demo::bench(quick, json, plot, filter),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("procq: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
