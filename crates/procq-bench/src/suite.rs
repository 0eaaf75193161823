//! Running the cases: each one repeated, timed and checked, and the run
//! loop that turns them into a report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::case::{all_cases, Case, Flow, BOUND, LOAD_PROCESSES};
use crate::harness::{Crew, Result};
use crate::item::Item;
use crate::model::{CaseError, Latency, Memory, Report, Throughput};
use crate::options::Options;
use crate::options::Progress;
use crate::stats::LatencySummary;
use crate::system::System;
use crate::units;
use crate::worker::Role;

/// State shared by the cases of one run.
struct Ctx {
    exe: PathBuf,
    quick: bool,
    runs: usize,
    prefix: String,
    counter: AtomicU64,
}

impl Ctx {
    /// A fresh name for a queue or socket of this run.
    fn fresh(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Time limit for one run of a case.
    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(if self.quick { 60 } else { 120 })
    }
}

/// Seconds a measured run should last in full mode.
const TARGET_SECS: f64 = 1.0;
/// Most bytes one run moves: bounds what an unbounded queue can pile up.
const MAX_RUN_BYTES: u64 = 2 << 30;
/// Most items one run moves.
const MAX_RUN_ITEMS: u64 = 50_000_000;

/// Items per run in quick mode (and for the warm-up run of full mode).
fn quick_items(item: Item) -> u64 {
    (32u64 << 20)
        .div_ceil(item.nominal_bytes())
        .clamp(16, 5_000)
}

pub(crate) fn run(opts: &Options, progress: &mut dyn FnMut(Progress)) -> Report {
    let started = Instant::now();
    let mut report = Report::new(opts.quick, opts.runs());
    let exe = match opts
        .worker_exe
        .clone()
        .map_or_else(std::env::current_exe, Ok)
    {
        Ok(exe) => exe,
        Err(e) => {
            report.errors.push(CaseError {
                case: "setup".into(),
                error: format!("cannot find the benchmark executable: {e}"),
            });
            return report;
        }
    };
    let ctx = Ctx {
        exe,
        quick: opts.quick,
        runs: opts.runs(),
        prefix: format!("bench-{}", std::process::id()),
        counter: AtomicU64::new(0),
    };
    report.stale_segments_removed = remove_stale();
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| opts.filter.as_ref().is_none_or(|f| c.id().contains(f)))
        .collect();
    let total = cases.len();
    for (index, case) in cases.into_iter().enumerate() {
        let id = case.id();
        progress(Progress::Started {
            case: id.clone(),
            index,
            total,
        });
        let outcome = match case {
            Case::Throughput(flow) => measure_flow(&ctx, flow).map(|t| {
                let s = format!(
                    "{} items/s, {}",
                    units::si(t.items_per_sec),
                    units::bytes_rate(t.bytes_per_sec)
                );
                report.throughput.push(t);
                s
            }),
            Case::Latency { system, loaded } => measure_latency(&ctx, system, loaded).map(|l| {
                let s = format!(
                    "p50 {}, p99 {}, p99.9 {}",
                    units::ns(l.p50_ns),
                    units::ns(l.p99_ns),
                    units::ns(l.p999_ns)
                );
                report.latency.push(l);
                s
            }),
            Case::Memory => measure_memory(&ctx).map(|m| {
                let s = format!(
                    "idle {}, after {} fill+drain {}",
                    units::bytes(m.idle_resident_bytes),
                    units::bytes(m.fill_bytes),
                    units::bytes(m.drained_resident_bytes)
                );
                report.memory = Some(m);
                s
            }),
        };
        match outcome {
            Ok(summary) => progress(Progress::Finished { case: id, summary }),
            Err(error) => {
                progress(Progress::Failed {
                    case: id.clone(),
                    error: error.clone(),
                });
                report.errors.push(CaseError { case: id, error });
            }
        }
    }
    report.leaked_segments = sweep_leaks(&ctx.prefix);
    report.seconds = started.elapsed().as_secs_f64();
    report.targets = crate::targets::compute(&report);
    report
}

/// Removes queues of earlier runs that were killed before they could clean
/// up (`bench-*` queues with no live process attached); returns their names.
fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for name in procq::list().unwrap_or_default() {
        if !name.starts_with("bench-") {
            continue;
        }
        let orphaned =
            procq::stats(&name).is_ok_and(|s| s.attached_processes == 0 && !s.persistent);
        if orphaned && procq::remove(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Names of this run's queues still in `/dev/shm`; removes them.
fn sweep_leaks(prefix: &str) -> Vec<String> {
    let leaked: Vec<String> = procq::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    for name in &leaked {
        let _ = procq::remove(name);
    }
    leaked
}

/// Runs `once(n)` (returning seconds) as the mode asks: quick, one run of
/// the quick count; full, a warm-up run that calibrates `n`, then `runs`
/// measured runs. Returns the item count of the measured runs and their
/// results.
fn repeat<T>(
    ctx: &Ctx,
    quick_n: u64,
    max_n: u64,
    seconds: impl Fn(&T) -> f64,
    mut once: impl FnMut(u64) -> Result<T>,
) -> Result<(u64, Vec<T>)> {
    let n = if ctx.quick {
        quick_n
    } else {
        let warm = once(quick_n)?;
        let rate = quick_n as f64 / seconds(&warm).max(1e-9);
        ((rate * TARGET_SECS) as u64).clamp(quick_n, max_n.max(quick_n))
    };
    let mut out = Vec::with_capacity(ctx.runs);
    for _ in 0..ctx.runs {
        out.push(once(n)?);
    }
    Ok((n, out))
}

fn measure_flow(ctx: &Ctx, flow: Flow) -> Result<Throughput> {
    let quick_n = quick_items(flow.item);
    let max_n = (MAX_RUN_BYTES / flow.item.nominal_bytes()).min(MAX_RUN_ITEMS);
    let (n, secs) = repeat(ctx, quick_n, max_n, |s| *s, |n| run_flow(ctx, flow, n))?;
    Ok(Throughput::new(Case::Throughput(flow).id(), flow, n, &secs))
}

fn run_flow(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    match (f.system, f.item) {
        (System::Procq, Item::U64) => run_procq::<u64>(ctx, f, n),
        (System::Procq, Item::Bytes(_)) => run_procq::<Vec<u8>>(ctx, f, n),
        (System::Socket, _) => run_socket(ctx, f, n),
        (System::IpcChannel, _) => run_ipc(ctx, f, n),
        (System::Crossbeam, _) => run_crossbeam(f, n),
        (System::Memcpy, _) => run_memcpy(f.item, n),
    }
}

/// Splits `n` items as evenly as possible over `k` workers.
fn split(n: u64, k: usize) -> Vec<u64> {
    let k = k.max(1) as u64;
    (0..k).map(|i| n / k + u64::from(i < n % k)).collect()
}

/// What the consumers' checksums must add up to.
fn expected_sum(item: Item, producer_counts: &[u64]) -> u64 {
    match item {
        // Producer j puts 0, 1, ..., n_j - 1.
        Item::U64 => producer_counts.iter().fold(0u64, |acc, &n| {
            acc.wrapping_add(n * n.saturating_sub(1) / 2)
        }),
        Item::Bytes(len) => producer_counts
            .iter()
            .fold(0u64, |acc, &n| acc.wrapping_add(n * len as u64)),
    }
}

/// Waits for the consumers (`cons`) and producers (`prods`) of a started
/// crew; returns the seconds from `start` to the last consumer's last item
/// and checks the items' checksum.
fn collect(
    mut crew: Crew<'_>,
    ctx: &Ctx,
    start: u64,
    cons: &[usize],
    prods: &[usize],
    expected: u64,
) -> Result<f64> {
    let deadline = ctx.deadline();
    let mut end = start;
    let mut sum = 0u64;
    for &c in cons {
        let d = crew.done(c, deadline)?;
        end = end.max(d.end_ns);
        sum = sum.wrapping_add(d.values.first().copied().unwrap_or(0));
    }
    for &p in prods {
        crew.done(p, deadline)?;
    }
    crew.finish(deadline)?;
    if sum != expected {
        return Err(format!(
            "items lost or duplicated: checksum {sum}, expected {expected}"
        ));
    }
    Ok(end.saturating_sub(start) as f64 / 1e9)
}

fn run_procq<T: Serialize + DeserializeOwned + 'static>(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    let name = ctx.fresh();
    // The parent holds the queue for the whole run; the last worker to
    // leave does not remove it, and dropping `q` at the end does.
    let q = procq::Builder::new()
        .name(&name)
        .maxsize(f.maxsize)
        .build::<T>()
        .map_err(|e| format!("creating queue: {e}"))?;
    let mut crew = Crew::new(&ctx.exe);
    let puts = split(n, f.producers);
    let mut cons = Vec::new();
    for (i, items) in split(n, f.consumers).into_iter().enumerate() {
        let role = Role::ProcqConsumer {
            queue: name.clone(),
            item: f.item,
            items,
            batch: f.batch,
        };
        cons.push(crew.spawn(&format!("consumer {i}"), &role)?.0);
    }
    let mut prods = Vec::new();
    for (i, &items) in puts.iter().enumerate() {
        let role = Role::ProcqProducer {
            queue: name.clone(),
            item: f.item,
            items,
            batch: f.batch,
        };
        prods.push(crew.spawn(&format!("producer {i}"), &role)?.0);
    }
    let start = crew.go()?;
    let secs = collect(crew, ctx, start, &cons, &prods, expected_sum(f.item, &puts))?;
    if q.qsize() != 0 {
        return Err(format!("{} items left in the queue", q.qsize()));
    }
    drop(q);
    Ok(secs)
}

/// A socket path for this run, removed on drop.
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(ctx: &Ctx) -> SocketPath {
        SocketPath(std::env::temp_dir().join(format!("procq-{}.sock", ctx.fresh())))
    }

    fn as_string(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run_socket(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    let path = SocketPath::new(ctx);
    let mut crew = Crew::new(&ctx.exe);
    let (c, _) = crew.spawn(
        "socket consumer",
        &Role::SocketConsumer {
            path: path.as_string(),
            item: f.item,
            items: n,
        },
    )?;
    let (p, _) = crew.spawn(
        "socket producer",
        &Role::SocketProducer {
            path: path.as_string(),
            item: f.item,
            items: n,
        },
    )?;
    let start = crew.go()?;
    collect(crew, ctx, start, &[c], &[p], expected_sum(f.item, &[n]))
}

fn run_ipc(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    let mut crew = Crew::new(&ctx.exe);
    let (p, server) = crew.spawn(
        "ipc-channel producer",
        &Role::IpcProducer {
            item: f.item,
            items: n,
        },
    )?;
    let (c, _) = crew.spawn(
        "ipc-channel consumer",
        &Role::IpcConsumer {
            server,
            item: f.item,
            items: n,
        },
    )?;
    let start = crew.go()?;
    collect(crew, ctx, start, &[c], &[p], expected_sum(f.item, &[n]))
}

/// crossbeam-channel between two threads: the same items, no processes,
/// no encoding. Timed from the common start to the consumer's last item.
fn run_crossbeam(f: Flow, n: u64) -> Result<f64> {
    fn go<T: Send>(maxsize: usize, n: u64, make: impl Fn(u64) -> T + Send) -> Result<f64> {
        let (tx, rx) = if maxsize > 0 {
            crossbeam_channel::bounded(maxsize)
        } else {
            crossbeam_channel::unbounded()
        };
        let barrier = &Barrier::new(2);
        std::thread::scope(|s| {
            let producer = s.spawn(move || {
                barrier.wait();
                for i in 0..n {
                    if tx.send(make(i)).is_err() {
                        return;
                    }
                }
            });
            barrier.wait();
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(rx.recv().map_err(|e| e.to_string())?);
            }
            let secs = start.elapsed().as_secs_f64();
            producer.join().map_err(|_| "producer thread panicked")?;
            Ok(secs)
        })
    }
    match f.item {
        Item::U64 => go(f.maxsize, n, |i| i),
        Item::Bytes(len) => {
            let payload = vec![f.item.fill_byte(); len];
            // Sending moves ownership: each item is a fresh copy, as a
            // consumer of procq gets a fresh `Vec` per item.
            go(f.maxsize, n, move |_| payload.clone())
        }
    }
}

/// `memcpy` of one item's bytes from one buffer to another, `n` times, in
/// one thread: the ceiling for moving the item once. Both buffers are
/// reused, as a queue's ring and a consumer's allocator reuse theirs, so
/// for items up to the cache size this is cache bandwidth, not DRAM's.
/// procq copies every item twice (into the ring and out of it), in two
/// processes that can run at the same time.
fn run_memcpy(item: Item, n: u64) -> Result<f64> {
    let len = item.nominal_bytes() as usize;
    // Both buffers start on a page boundary. On some CPUs (AMD Zen, with
    // glibc's `rep movsb` copy) a copy whose destination sits 1 to 31 bytes
    // past its source modulo 4096 runs 20x slower; where two `Vec`s happen
    // to land would otherwise decide the "ceiling".
    let page = 4096;
    let src_buf = vec![item.fill_byte(); len + page];
    let mut dst_buf = vec![1u8; len + page];
    let s0 = src_buf.as_ptr().align_offset(page);
    let d0 = dst_buf.as_ptr().align_offset(page);
    let src = &src_buf[s0..s0 + len];
    let start = Instant::now();
    for _ in 0..n {
        let dst = &mut dst_buf[d0..d0 + len];
        dst.copy_from_slice(std::hint::black_box(src));
        std::hint::black_box(dst);
    }
    Ok(start.elapsed().as_secs_f64())
}

fn measure_latency(ctx: &Ctx, system: System, loaded: bool) -> Result<Latency> {
    let quick_n = 2_000;
    let (n, runs) = repeat(
        ctx,
        quick_n,
        200_000,
        |s: &(LatencySummary, f64)| s.1,
        |n| ping_pong(ctx, system, loaded, n),
    )?;
    let summaries: Vec<LatencySummary> = runs.into_iter().map(|r| r.0).collect();
    Ok(Latency::new(
        Case::Latency { system, loaded }.id(),
        system,
        loaded,
        n,
        &summaries,
    ))
}

/// One ping-pong run of `n` timed round trips; returns the percentiles
/// and the run's duration.
fn ping_pong(ctx: &Ctx, system: System, loaded: bool, n: u64) -> Result<(LatencySummary, f64)> {
    let warmup = (n / 10).max(100);
    if system == System::Crossbeam {
        return crossbeam_ping_pong(warmup, n);
    }
    let mut crew = Crew::new(&ctx.exe);
    let mut loads = Vec::new();
    let load_queue = if loaded {
        let name = ctx.fresh();
        let q = procq::Builder::new()
            .name(&name)
            .maxsize(BOUND)
            .build::<u64>()
            .map_err(|e| format!("creating load queue: {e}"))?;
        for i in 0..LOAD_PROCESSES {
            let role = Role::Load {
                queue: name.clone(),
                producer: i % 2 == 0,
            };
            loads.push(crew.spawn(&format!("load {i}"), &role)?.0);
        }
        Some(q)
    } else {
        None
    };
    let mut queues = Vec::new();
    let socket = SocketPath::new(ctx);
    let (pinger, ponger) = match system {
        System::Procq => {
            for _ in 0..2 {
                let name = ctx.fresh();
                let q = procq::Builder::new()
                    .name(&name)
                    .build::<u64>()
                    .map_err(|e| format!("creating queue: {e}"))?;
                queues.push(q);
            }
            let (ping, pong) = (queues[0].name().to_owned(), queues[1].name().to_owned());
            let ponger = crew.spawn(
                "ponger",
                &Role::ProcqPonger {
                    ping: ping.clone(),
                    pong: pong.clone(),
                    count: warmup + n,
                },
            )?;
            let pinger = crew.spawn(
                "pinger",
                &Role::ProcqPinger {
                    ping,
                    pong,
                    warmup,
                    round_trips: n,
                },
            )?;
            (pinger.0, ponger.0)
        }
        System::Socket => {
            let ponger = crew.spawn(
                "ponger",
                &Role::SocketPonger {
                    path: socket.as_string(),
                    count: warmup + n,
                },
            )?;
            let pinger = crew.spawn(
                "pinger",
                &Role::SocketPinger {
                    path: socket.as_string(),
                    warmup,
                    round_trips: n,
                },
            )?;
            (pinger.0, ponger.0)
        }
        other => return Err(format!("no process ping-pong for {other}")),
    };
    let start = crew.go()?;
    let deadline = ctx.deadline();
    let done = crew.done(pinger, deadline)?;
    crew.done(ponger, deadline)?;
    for &l in &loads {
        crew.close_stdin(l);
    }
    for &l in &loads {
        crew.done(l, deadline)?;
    }
    crew.finish(deadline)?;
    drop(load_queue);
    drop(queues);
    let v = &done.values;
    if v.len() < 4 {
        return Err("pinger sent too few figures".into());
    }
    let summary = LatencySummary {
        p50_ns: v[0],
        p99_ns: v[1],
        p999_ns: v[2],
        max_ns: v[3],
    };
    Ok((summary, done.end_ns.saturating_sub(start) as f64 / 1e9))
}

fn crossbeam_ping_pong(warmup: u64, n: u64) -> Result<(LatencySummary, f64)> {
    let (ping_tx, ping_rx) = crossbeam_channel::unbounded::<u64>();
    let (pong_tx, pong_rx) = crossbeam_channel::unbounded::<u64>();
    let start = Instant::now();
    let mut samples = Vec::with_capacity(n as usize);
    std::thread::scope(|s| {
        s.spawn(move || {
            for v in ping_rx.iter() {
                if pong_tx.send(v).is_err() {
                    break;
                }
            }
        });
        for i in 0..warmup + n {
            let t = Instant::now();
            ping_tx.send(i).map_err(|e| e.to_string())?;
            if pong_rx.recv().map_err(|e| e.to_string())? != i {
                return Err("crossbeam ping answered wrongly".to_owned());
            }
            if i >= warmup {
                samples.push(t.elapsed().as_nanos() as u64);
            }
        }
        drop(ping_tx);
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    Ok((LatencySummary::from_samples(&mut samples), secs))
}

/// Resident memory of an idle unbounded queue, and after `fill` bytes of
/// 1 MiB items were put (all at once) and drained (measured 50 ms later,
/// past the ring's 20 ms idle period before it shrinks).
fn measure_memory(ctx: &Ctx) -> Result<Memory> {
    let fill: u64 = if ctx.quick { 64 << 20 } else { 1 << 30 };
    let item = Item::Bytes(1 << 20);
    let name = ctx.fresh();
    let q = procq::Builder::new()
        .name(&name)
        .build::<Vec<u8>>()
        .map_err(|e| format!("creating queue: {e}"))?;
    let resident = || {
        procq::stats(&name)
            .map(|s| s.resident_bytes)
            .map_err(|e| format!("stats: {e}"))
    };
    let idle = resident()?;
    let idle_rss = rss_bytes();
    let payload = vec![item.fill_byte(); item.nominal_bytes() as usize];
    let count = fill / item.nominal_bytes();
    for _ in 0..count {
        q.put(&payload).map_err(|e| format!("put: {e}"))?;
    }
    let full = resident()?;
    for _ in 0..count {
        let v = q
            .get_timeout(Duration::from_secs(10))
            .map_err(|e| format!("get: {e}"))?;
        if v.len() != payload.len() {
            return Err("drained item has the wrong size".into());
        }
    }
    // A drained ring gives its memory back once it has stayed empty for
    // 20 ms (hysteresis against refill churn); the first look after that
    // (here `stats`) does it.
    std::thread::sleep(Duration::from_millis(50));
    let drained = resident()?;
    let drained_rss = rss_bytes();
    drop(q);
    if Path::new(&format!("/dev/shm/procq-{name}")).exists() {
        return Err("queue segment still in /dev/shm after its last handle was dropped".into());
    }
    Ok(Memory {
        case: Case::Memory.id(),
        fill_bytes: fill,
        item_bytes: item.nominal_bytes(),
        idle_resident_bytes: idle,
        full_resident_bytes: full,
        drained_resident_bytes: drained,
        idle_rss_bytes: idle_rss,
        drained_rss_bytes: drained_rss,
    })
}

/// This process's resident set (`VmRSS`), 0 if unknown.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_even_and_complete() {
        assert_eq!(split(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split(3, 4), vec![1, 1, 1, 0]);
        assert_eq!(split(7, 1), vec![7]);
    }

    #[test]
    fn checksums_match_what_workers_send() {
        assert_eq!(expected_sum(Item::U64, &[4]), 6);
        assert_eq!(expected_sum(Item::U64, &[2, 3]), 1 + 3);
        assert_eq!(expected_sum(Item::Bytes(100), &[2, 3]), 500);
    }

    #[test]
    fn case_ids_are_unique() {
        let ids: Vec<String> = all_cases().iter().map(Case::id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }

    #[test]
    fn quick_counts_stay_small() {
        for item in Item::ALL {
            let n = quick_items(item);
            assert!((16..=5_000).contains(&n));
            assert!(n * item.nominal_bytes() <= 40 << 20);
        }
    }

    #[test]
    fn memcpy_and_crossbeam_baselines_run() {
        assert!(run_memcpy(Item::Bytes(4096), 100).unwrap() >= 0.0);
        let f = Flow {
            system: System::Crossbeam,
            producers: 1,
            consumers: 1,
            item: Item::Bytes(100),
            maxsize: 4,
            batch: 1,
        };
        assert!(run_crossbeam(f, 1000).unwrap() > 0.0);
    }
}
