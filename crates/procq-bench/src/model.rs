//! What a run measured: the report and its parts, as they serialize to
//! JSON (the field names are the stable keys of `results/*.json`).

use serde::{Deserialize, Serialize};

use crate::case::{Flow, LOAD_PROCESSES};
use crate::item::Item;
use crate::stats::{median, LatencySummary};
use crate::system::System;

/// Everything one run of the suite measured. Serializes to JSON.
///
/// ```
/// let report = procq_bench::Report::default();
/// let json = serde_json::to_string(&report)?;
/// let back: procq_bench::Report = serde_json::from_str(&json)?;
/// assert_eq!(back.throughput.len(), 0);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// Version of the procq crate measured.
    pub procq_version: String,
    /// The machine the figures come from.
    pub machine: Machine,
    /// When the run started, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall-clock length of the whole run.
    pub seconds: f64,
    /// Measured runs per case (medians are reported).
    pub runs_per_case: usize,
    /// Throughput and batch cases.
    pub throughput: Vec<Throughput>,
    /// Ping-pong latency cases.
    pub latency: Vec<Latency>,
    /// The memory case, if it ran.
    pub memory: Option<Memory>,
    /// The issue's targets, met or not.
    pub targets: Vec<Target>,
    /// Cases that failed, with why.
    pub errors: Vec<CaseError>,
    /// Queues of this run still in `/dev/shm` at the end (removed since):
    /// should be empty.
    pub leaked_segments: Vec<String>,
    /// Queues of earlier, killed runs (no live process attached) removed
    /// before this run started.
    pub stale_segments_removed: Vec<String>,
}

/// Where the figures come from.
///
/// ```
/// let m = procq_bench::Machine::current();
/// assert!(m.cpus >= 1);
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// CPU model (from `/proc/cpuinfo`).
    pub cpu_model: String,
    /// Kernel release (from `/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// Load average over the last minute when the run started.
    pub load_average: f64,
}

impl Machine {
    /// Describes the machine this process runs on.
    pub fn current() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(0.0),
        }
    }
}

/// One throughput case: items moved from producers to consumers.
///
/// ```
/// let r = procq_bench::run(
///     &procq_bench::Options { filter: Some("memcpy/1p1c/8B".into()), ..procq_bench::Options::quick() },
///     &mut |_| {},
/// );
/// let t = &r.throughput[0];
/// assert_eq!((t.item.as_str(), t.item_bytes), ("8 B", 8));
/// assert_eq!(t.bytes_per_sec, t.items_per_sec * 8.0);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Case id, e.g. `throughput/procq/1p1c/8B/bounded`.
    pub case: String,
    /// What carried the items.
    pub system: System,
    /// Producer processes (threads for crossbeam).
    pub producers: usize,
    /// Consumer processes (threads for crossbeam).
    pub consumers: usize,
    /// Item size label (`8 B`, ..., `1 MiB`).
    pub item: String,
    /// Payload bytes per item.
    pub item_bytes: u64,
    /// Queue bound; 0 = unbounded (sockets: the kernel's buffer).
    pub maxsize: usize,
    /// Items per `put_many`/`get_many`; 1 = single `put`/`get`.
    pub batch: usize,
    /// Items per measured run.
    pub items: u64,
    /// Median seconds per run.
    pub seconds: f64,
    /// Median items per second (all consumers together).
    pub items_per_sec: f64,
    /// `items_per_sec × item_bytes`.
    pub bytes_per_sec: f64,
    /// Items per second of every measured run.
    pub runs_items_per_sec: Vec<f64>,
}

impl Throughput {
    pub(crate) fn new(case: String, f: Flow, items: u64, secs: &[f64]) -> Throughput {
        let rates: Vec<f64> = secs.iter().map(|s| items as f64 / s.max(1e-9)).collect();
        let items_per_sec = median(&rates);
        Throughput {
            case,
            system: f.system,
            producers: f.producers,
            consumers: f.consumers,
            item: f.item.label(),
            item_bytes: f.item.nominal_bytes(),
            maxsize: f.maxsize,
            batch: f.batch,
            items,
            seconds: median(secs),
            items_per_sec,
            bytes_per_sec: items_per_sec * f.item.nominal_bytes() as f64,
            runs_items_per_sec: rates,
        }
    }
}

/// One ping-pong case: 8 B round trips between two processes (threads for
/// crossbeam).
///
/// ```
/// let r = procq_bench::run(
///     &procq_bench::Options { filter: Some("latency/crossbeam".into()), ..procq_bench::Options::quick() },
///     &mut |_| {},
/// );
/// let l = r.find_latency(procq_bench::System::Crossbeam, false).unwrap();
/// assert!(l.p50_ns <= l.p99_ns && l.p99_ns <= l.p999_ns && l.p999_ns <= l.max_ns);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Case id, e.g. `latency/procq/idle`.
    pub case: String,
    /// What carried the pings.
    pub system: System,
    /// Whether busy load processes (more than the cores) ran meanwhile.
    pub oversubscribed: bool,
    /// Number of busy load processes.
    pub load_processes: usize,
    /// Timed round trips per run.
    pub round_trips: u64,
    /// Median round trip (median over runs).
    pub p50_ns: u64,
    /// 99th percentile (median over runs).
    pub p99_ns: u64,
    /// 99.9th percentile (median over runs).
    pub p999_ns: u64,
    /// Slowest round trip (median over runs).
    pub max_ns: u64,
    /// CPU time both sides of the ping-pong used per round trip, user +
    /// system, over the whole run (median over runs; the load processes
    /// not counted): what waiting by spinning costs. `None` where it was
    /// not measured (reports of older versions).
    #[serde(default)]
    pub cpu_ns_per_round_trip: Option<u64>,
    /// The same CPU time divided by the run's wall time: how many cores the
    /// two sides kept busy (2.0: both spun the whole time).
    #[serde(default)]
    pub cpu_cores: Option<f64>,
}

impl Latency {
    pub(crate) fn new(
        case: String,
        system: System,
        loaded: bool,
        round_trips: u64,
        runs: &[LatencySummary],
        cpu: &[Option<CpuUse>],
    ) -> Latency {
        let pick = |f: fn(&LatencySummary) -> u64| {
            median(&runs.iter().map(|r| f(r) as f64).collect::<Vec<_>>()) as u64
        };
        // Only if every run measured it: a median of some runs would hide
        // the others.
        let cpu: Option<Vec<CpuUse>> = cpu.iter().copied().collect();
        let cpu_pick = |f: fn(&CpuUse) -> f64| {
            cpu.as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| median(&c.iter().map(f).collect::<Vec<_>>()))
        };
        Latency {
            case,
            system,
            oversubscribed: loaded,
            load_processes: if loaded { LOAD_PROCESSES } else { 0 },
            round_trips,
            p50_ns: pick(|r| r.p50_ns),
            p99_ns: pick(|r| r.p99_ns),
            p999_ns: pick(|r| r.p999_ns),
            max_ns: pick(|r| r.max_ns),
            cpu_ns_per_round_trip: cpu_pick(|c| c.ns_per_round_trip).map(|v| v as u64),
            cpu_cores: cpu_pick(|c| c.cores),
        }
    }
}

/// CPU time of both sides of one ping-pong run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuUse {
    /// CPU ns of both processes (threads) per round trip.
    pub(crate) ns_per_round_trip: f64,
    /// CPU time / wall time of the run.
    pub(crate) cores: f64,
}

/// Memory held by an unbounded queue (1 MiB items, filled all at once).
///
/// ```
/// let r = procq_bench::run(
///     &procq_bench::Options { filter: Some("memory".into()), ..procq_bench::Options::quick() },
///     &mut |_| {},
/// );
/// let m = r.memory.unwrap();
/// assert!(m.full_resident_bytes >= m.fill_bytes);
/// assert!(m.drained_resident_bytes < m.full_resident_bytes);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    /// Case id (`memory/procq`).
    pub case: String,
    /// Bytes put before draining (1 GiB full, 64 MiB quick).
    pub fill_bytes: u64,
    /// Item size used for the fill.
    pub item_bytes: u64,
    /// `procq::stats(name)?.resident_bytes` of the fresh queue.
    pub idle_resident_bytes: u64,
    /// The same with everything put.
    pub full_resident_bytes: u64,
    /// The same after everything was got again.
    pub drained_resident_bytes: u64,
    /// The benchmark process's RSS before the fill.
    pub idle_rss_bytes: u64,
    /// The benchmark process's RSS after the drain.
    pub drained_rss_bytes: u64,
}

/// A case that could not be measured.
///
/// ```
/// // A worker binary that does not exist makes every process case fail.
/// let opts = procq_bench::Options {
///     filter: Some("throughput/socket/1p1c/8B".into()),
///     worker_exe: Some("/nonexistent/procq-bench".into()),
///     ..procq_bench::Options::quick()
/// };
/// let r = procq_bench::run(&opts, &mut |_| {});
/// assert_eq!(r.errors[0].case, "throughput/socket/1p1c/8B");
/// assert!(r.errors[0].error.contains("starting worker"));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseError {
    /// Case id.
    pub case: String,
    /// What went wrong.
    pub error: String,
}

/// Outcome of one target of the issue.
///
/// ```
/// // With no cases run, every target lacks its figures.
/// let r = procq_bench::run(
///     &procq_bench::Options { filter: Some("memcpy/1p1c/8B".into()), ..procq_bench::Options::quick() },
///     &mut |_| {},
/// );
/// assert!(r.targets.iter().all(|t| t.result == procq_bench::TargetResult::Missing));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetResult {
    /// The figure meets the target.
    Met,
    /// The figure misses the target.
    NotMet,
    /// A figure reported without a pass mark.
    Reported,
    /// A case it needs did not run (filtered out or failed).
    Missing,
}

/// One target of the "Performance" issue, e.g. "procq ≥ 10× socket".
///
/// ```
/// let r = procq_bench::run(
///     &procq_bench::Options { filter: Some("memory".into()), ..procq_bench::Options::quick() },
///     &mut |_| {},
/// );
/// let t = r.targets.iter().find(|t| t.name.starts_with("memory")).unwrap();
/// assert!(t.measured.is_some() && t.required == Some(2.0));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// What is compared, e.g. `1P/1C 8 B unbounded: procq / socket`.
    pub name: String,
    /// The measured ratio (or figure), if both sides ran.
    pub measured: Option<f64>,
    /// `>=` or `<=`, or empty for a figure that is only reported.
    pub comparison: String,
    /// The required ratio (or figure).
    pub required: Option<f64>,
    /// Unit of `measured` and `required`: empty for a ratio (shown as
    /// `1.23x`), else e.g. `us` for an absolute latency target.
    #[serde(default)]
    pub unit: String,
    /// Met or not.
    pub result: TargetResult,
    /// The figures the ratio comes from.
    pub detail: String,
}

impl Report {
    pub(crate) fn new(quick: bool, runs: usize) -> Report {
        Report {
            mode: if quick { "quick" } else { "full" }.into(),
            procq_version: env!("CARGO_PKG_VERSION").into(),
            machine: Machine::current(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            runs_per_case: runs,
            ..Report::default()
        }
    }

    /// The throughput case with as many producers as consumers and these
    /// parameters, if it ran.
    ///
    /// ```
    /// let r = procq_bench::Report::default();
    /// assert!(r.find_throughput(procq_bench::System::Socket, 1, procq_bench::Item::U64, 0, 1).is_none());
    /// ```
    pub fn find_throughput(
        &self,
        system: System,
        producers: usize,
        item: Item,
        maxsize: usize,
        batch: usize,
    ) -> Option<&Throughput> {
        self.find_flow(system, (producers, producers), item, Some(maxsize), batch)
    }

    /// The throughput case of `system` with these (producers, consumers)
    /// and parameters, if it ran; `maxsize: None` matches any bound (the
    /// peers' bound depends on the item size).
    ///
    /// ```
    /// use procq_bench::{Item, System};
    /// let r = procq_bench::Report::default();
    /// assert!(r.find_flow(System::Procq, (4, 1), Item::U64, Some(1024), 1).is_none());
    /// assert!(r.find_flow(System::Ipmpsc, (1, 1), Item::U64, None, 1).is_none());
    /// ```
    pub fn find_flow(
        &self,
        system: System,
        (producers, consumers): (usize, usize),
        item: Item,
        maxsize: Option<usize>,
        batch: usize,
    ) -> Option<&Throughput> {
        self.throughput.iter().find(|t| {
            t.system == system
                && t.producers == producers
                && t.consumers == consumers
                && t.item_bytes == item.nominal_bytes()
                && maxsize.is_none_or(|m| t.maxsize == m)
                && t.batch == batch
        })
    }

    /// The latency case for this system and load, if it ran.
    ///
    /// ```
    /// let r = procq_bench::Report::default();
    /// assert!(r.find_latency(procq_bench::System::Procq, false).is_none());
    /// ```
    pub fn find_latency(&self, system: System, oversubscribed: bool) -> Option<&Latency> {
        self.latency
            .iter()
            .find(|l| l.system == system && l.oversubscribed == oversubscribed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports written before a field existed (the committed results, a
    /// user's older JSON) still read: new fields are optional.
    #[test]
    fn reports_without_the_newer_fields_still_read() {
        let r: Report = serde_json::from_str(include_str!("../results/full-2cpu.json")).unwrap();
        assert!(!r.latency.is_empty() && !r.targets.is_empty());
        let old_latency = r#"{"case":"latency/procq/idle","system":"procq","oversubscribed":false,
            "load_processes":0,"round_trips":10,"p50_ns":1,"p99_ns":2,"p999_ns":3,"max_ns":4}"#;
        let l: Latency = serde_json::from_str(old_latency).unwrap();
        assert_eq!((l.cpu_ns_per_round_trip, l.cpu_cores), (None, None));
        let old_target = r#"{"name":"x","measured":1.0,"comparison":">=","required":1.0,
            "result":"met","detail":""}"#;
        let t: Target = serde_json::from_str(old_target).unwrap();
        assert_eq!(t.unit, "");
    }
}
