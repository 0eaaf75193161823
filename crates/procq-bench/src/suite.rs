//! Running the cases: each one repeated, timed and checked, and the run
//! loop that turns them into a report.
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::case::{all_cases, Case};
use crate::ctx::Ctx;
use crate::harness::Result;
use crate::item::Item;
use crate::model::{CaseError, Memory, Report};
use crate::options::{Options, Progress};
use crate::units;
use crate::{flows, pingpong};

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
        .filter(|c| {
            opts.filter
                .as_ref()
                .is_none_or(|f| crate::options::selects(f, &c.id()))
        })
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
            Case::Throughput(flow) => flows::measure(&ctx, flow).map(|t| {
                let s = format!(
                    "{} items/s, {}",
                    units::si(t.items_per_sec),
                    units::bytes_rate(t.bytes_per_sec)
                );
                report.throughput.push(t);
                s
            }),
            Case::Latency { system, loaded } => pingpong::measure(&ctx, system, loaded).map(|l| {
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

/// Names of this run's queues still in `/dev/shm`, and of the peers'
/// files (ipmpsc rings, iceoryx2 resources) still there or in iceoryx2's
/// directory; removes them.
fn sweep_leaks(prefix: &str) -> Vec<String> {
    let mut leaked: Vec<String> = procq::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    for name in &leaked {
        let _ = procq::remove(name);
    }
    {
        #[cfg(feature = "iceoryx2")]
        let iox = Some(crate::worker::iceoryx2_prefix(std::process::id()));
        #[cfg(not(feature = "iceoryx2"))]
        let iox: Option<String> = None;
        let ours = |n: &str| {
            n.starts_with(&format!("{prefix}-")) || iox.as_ref().is_some_and(|p| n.contains(p))
        };
        for dir in ["/dev/shm", "/tmp/iceoryx2"] {
            // iceoryx2 keeps one management segment per prefix after its
            // last node is gone, by design: removed, but not a leak.
            leaked.extend(
                sweep_dir(Path::new(dir), &ours)
                    .into_iter()
                    .filter(|p| !p.ends_with(".global_mgmt")),
            );
        }
    }
    leaked
}

/// Removes the files under `dir` (recursively) whose names `ours` accepts;
/// returns their paths.
fn sweep_dir(dir: &Path, ours: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        match entry.file_type() {
            Ok(t) if t.is_dir() => removed.extend(sweep_dir(&path, ours)),
            Ok(_) if ours(&name) && std::fs::remove_file(&path).is_ok() => {
                removed.push(path.display().to_string());
            }
            _ => {}
        }
    }
    removed
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
    fn case_ids_are_unique() {
        let ids: Vec<String> = all_cases().iter().map(Case::id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }
}
