//! The worker's side of its line protocol with the parent (see the
//! `worker` module): the `ready`/`done` lines it prints, the `go` it waits
//! for, the `CLOCK_MONOTONIC` timestamps the `done` line carries, and the
//! vocabulary the peer workers (`ipmpsc`, `iceoryx2`) share with the procq
//! and socket workers. It sits below `worker/mod.rs` and the peer modules,
//! so that they use it and not each other (no import cycle).

use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::stats::LatencySummary;

/// How an ipmpsc worker encodes `Vec<u8>` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Bincode {
    /// serde's generic sequence: one `u8` at a time.
    Generic,
    /// `serde_bytes`: the bytes as one block.
    Bytes,
}

/// Nanoseconds on `CLOCK_MONOTONIC`, comparable across processes (the
/// clock `Instant` uses on Linux, but as a plain number).
pub(crate) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// CPU time (user + system) this process has used so far, in ns: the
/// kernel's per-process accounting that `getrusage` and
/// `/proc/<pid>/stat` report too, at a finer grain.
pub(crate) fn process_cpu_ns() -> u64 {
    cpu_ns(rustix::time::ClockId::ProcessCPUTime)
}

/// CPU time the calling thread has used so far, in ns.
pub(crate) fn thread_cpu_ns() -> u64 {
    cpu_ns(rustix::time::ClockId::ThreadCPUTime)
}

fn cpu_ns(clock: rustix::time::ClockId) -> u64 {
    let t = rustix::time::clock_gettime(clock);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The `done` line of a ponger: its end time and the CPU it used since
/// `cpu_start` (a [`process_cpu_ns`] reading taken at `go`).
pub(crate) fn say_ponger_done(cpu_start: u64) -> Result<()> {
    say(&format!(
        "done {} {}",
        monotonic_ns(),
        process_cpu_ns().saturating_sub(cpu_start)
    ))
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, BoxError>;

/// Set once this worker has reported `done`.
static FINISHED: AtomicBool = AtomicBool::new(false);

pub(crate) fn say(line: &str) -> Result<()> {
    if line.starts_with("done") {
        FINISHED.store(true, Ordering::SeqCst);
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Waits for the parent's line `word` (one before `go`).
#[cfg_attr(not(feature = "iceoryx2"), allow(dead_code))]
pub(crate) fn wait_word(word: &str) -> Result<()> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    if line.trim() != word {
        return Err(format!("expected {word:?} from the parent, got {line:?}").into());
    }
    Ok(())
}

/// Waits for the parent's `go` line, then watches stdin: it closes early
/// only if the parent gave up on this run or died, and then a worker blocked
/// in a `get` must not linger (holding a queue) forever.
pub(crate) fn wait_go() -> Result<()> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "go" {
        return Err(format!("expected \"go\" from the parent, got {line:?}").into());
    }
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        if !FINISHED.load(Ordering::SeqCst) {
            eprintln!("procq-bench worker: the parent went away; stopping");
            std::process::exit(1);
        }
        RELEASED.store(true, Ordering::SeqCst);
    });
    Ok(())
}

/// Set when the parent closed this worker's stdin after its `done`.
static RELEASED: AtomicBool = AtomicBool::new(false);

/// After `done`: waits until the parent lets go (it closes stdin once
/// every consumer has reported), for senders whose undelivered items
/// would vanish with them (an iceoryx2 publisher takes its data segment
/// along when it goes).
#[cfg_attr(not(feature = "iceoryx2"), allow(dead_code))]
pub(crate) fn linger() {
    while !RELEASED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What a zero-copy reader checks of an item it reads in place: its
/// length and its first and last bytes (a full checksum would read every
/// byte, which is a copy's cost). Returns the length if the item is
/// whole, 0 otherwise, for the consumer's checksum.
pub(crate) fn check_in_place(bytes: &[u8], len: usize) -> u64 {
    let fill = crate::item::Item::Bytes(len).fill_byte();
    let ok = bytes.len() == len && bytes.first() == Some(&fill) && bytes.last() == Some(&fill);
    if ok {
        len as u64
    } else {
        0
    }
}

pub(crate) fn expect_echo(sent: u64, got: u64) -> Result<()> {
    if sent != got {
        return Err(format!("ping {sent} answered with {got}").into());
    }
    Ok(())
}

/// Times `round_trips` calls of `once` after `warmup` untimed ones and
/// prints the percentiles, then the CPU ns this process used for all of
/// them, on the `done` line.
pub(crate) fn ping_pong(
    warmup: u64,
    round_trips: u64,
    mut once: impl FnMut(u64) -> Result<()>,
) -> Result<()> {
    let cpu_start = process_cpu_ns();
    for i in 0..warmup {
        once(i)?;
    }
    let mut samples = Vec::with_capacity(round_trips as usize);
    for i in 0..round_trips {
        let t = Instant::now();
        once(warmup + i)?;
        samples.push(t.elapsed().as_nanos() as u64);
    }
    let s = LatencySummary::from_samples(&mut samples);
    say(&format!(
        "done {} {} {} {} {} {}",
        monotonic_ns(),
        s.p50_ns,
        s.p99_ns,
        s.p999_ns,
        s.max_ns,
        process_cpu_ns().saturating_sub(cpu_start)
    ))
}
