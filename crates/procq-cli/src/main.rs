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
mod failure;
mod inspect;
mod pipe;
mod shell;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See, manage, pipe and benchmark procq queues.
///
/// A queue is named by its shared-memory name (jobs) or by a Redis URL:
/// redis://[user:password@]host:port/db/name (rediss:// for TLS).
/// Passwords are shown as ***.
///
/// Exit codes: 0 success; 1 the operation failed (timed out, queue in use,
/// I/O error); 2 bad usage, invalid name, or no such queue.
#[derive(Parser)]
#[command(name = "procq", version, propagate_version = true)]
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
        /// Machine-readable output (with --watch: one JSON object per line
        /// and second, NDJSON).
        #[arg(long)]
        json: bool,
        /// Every second until Ctrl-C, with live rates (items/s in and out):
        /// redrawn in place on a terminal, appended otherwise.
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
        /// Succeed quietly if there is no such queue (for idempotent scripts).
        #[arg(long)]
        if_exists: bool,
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
    /// Shut a queue down: puts fail from now on, gets hand out what is
    /// left and then fail (`get --follow` ends with exit code 0), in every
    /// process. A queue stays shut down; remove it and create a new one to
    /// start over.
    ///
    /// Example: procq shutdown jobs
    ///
    /// Example: procq shutdown jobs --immediate
    Shutdown {
        /// Queue name or redis:// URL.
        name: String,
        /// Also drop the items left (on a joinable queue they count as
        /// done, so `join()` returns).
        #[arg(long)]
        immediate: bool,
    },
    /// Put items read from stdin: one per line, NUL-separated with -0, or
    /// all of it as one item with --raw.
    ///
    /// Items are stored in the String/Vec<u8> format (a varint length, then
    /// the bytes), which Rust's Queue<String> and Python's codec="text" read.
    ///
    /// Example: seq 10 | procq put jobs --create
    ///
    /// Example: find . -name '*.txt' -print0 | procq put jobs -0
    ///
    /// Example: procq put images --raw < photo.jpg
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
        /// Put the whole input, byte for byte, as one item (`get --raw`
        /// prints it back byte for byte).
        #[arg(long, conflicts_with = "null")]
        raw: bool,
        /// Items are separated by NUL bytes, not newlines (as `find
        /// -print0` writes them); a final NUL is optional.
        #[arg(short = '0', long)]
        null: bool,
        /// Give up (exit 1) if the queue stays full this many seconds; the
        /// message says how many items went in before.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
    },
    /// Get items and print them, one per line (NUL-terminated with -0).
    ///
    /// Example: procq get jobs -n 10 --timeout 5
    ///
    /// Example: procq get jobs -0 -n 100 | xargs -0 -n 1 echo
    ///
    /// Example: procq get images --raw > photo.jpg
    Get {
        /// Queue name or redis:// URL.
        name: String,
        /// How many items to get.
        #[arg(short = 'n', long, default_value_t = 1)]
        count: u64,
        /// Give up (exit 1) if no item arrives for this many seconds.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
        /// Keep getting items until interrupted, or until the queue is shut
        /// down (`procq shutdown`) and drained: then exit 0.
        #[arg(long)]
        follow: bool,
        /// Print each item's bytes exactly, with nothing added (what `put
        /// --raw` put comes back byte for byte).
        #[arg(long, conflicts_with_all = ["null", "stored"])]
        raw: bool,
        /// End each item with a NUL byte instead of a newline (for `xargs -0`).
        #[arg(short = '0', long, conflicts_with = "stored")]
        null: bool,
        /// Print each item as stored, undecoded, with nothing added: for
        /// items in other formats (Python's pickle or bytes codecs).
        #[arg(long)]
        stored: bool,
    },
    /// Show what procq is for, in a few seconds.
    ///
    /// The article's programs; a producer killed with SIGKILL mid-stream,
    /// and the check that no item was lost; the same items through a pipe
    /// and through procq, with the ratio; the live queue as `procq ls` and
    /// `procq stat` show it.
    ///
    /// Example: procq demo
    Demo,
    /// Run the benchmark suite and print the comparison with the other
    /// ways to move items between processes.
    ///
    /// Example: procq bench --quick --json-out bench.json --plot bench.svg
    #[command(after_help = procq_bench::EXIT_STATUS)]
    Bench(procq_bench::BenchArgs),
    /// Print a shell completion script.
    ///
    /// Example: procq completions bash > /etc/bash_completion.d/procq
    ///
    /// Example: procq completions zsh > ~/.zfunc/_procq
    ///
    /// Example: procq completions fish > ~/.config/fish/completions/procq.fish
    Completions {
        /// The shell.
        shell: shell::Shell,
    },
    /// Print the manual page (roff).
    ///
    /// Example: procq man > /usr/local/share/man/man1/procq.1
    ///
    /// Example: procq man | man -l -
    Man,
}

fn main() -> ExitCode {
    // A re-executed child of `procq demo` runs its target here and exits;
    // so does a worker of `procq bench`.
    procq::init();
    if let Some(code) = procq_bench::run_worker_if_requested() {
        return code;
    }
    if let Some(code) = demo::run_pipe_writer_if_requested() {
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
        Command::Rm {
            name,
            force,
            if_exists,
        } => inspect::rm(&name, force, if_exists),
        Command::Gc { dry_run } => inspect::gc(dry_run),
        Command::Create {
            name,
            maxsize,
            joinable,
        } => inspect::create(&name, maxsize, joinable),
        Command::Shutdown { name, immediate } => pipe::shutdown(&name, immediate),
        Command::Put {
            name,
            create,
            maxsize,
            raw,
            null,
            timeout,
        } => pipe::put(
            &name,
            create,
            maxsize,
            pipe::framing(raw, null, false),
            timeout,
        ),
        Command::Get {
            name,
            count,
            timeout,
            follow,
            raw,
            null,
            stored,
        } => pipe::get(
            &name,
            count,
            timeout,
            follow,
            pipe::framing(raw, null, stored),
        ),
        Command::Demo => demo::run(),
        Command::Bench(args) => return args.run("procq"),
        Command::Completions { shell } => shell::completions::<Cli>(shell),
        Command::Man => shell::man::<Cli>(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("procq: {}", f.message());
            ExitCode::from(f.code())
        }
    }
}
