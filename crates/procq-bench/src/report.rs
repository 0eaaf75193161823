//! The report: results, the issue's targets, and the terminal table.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::suite::{Flow, BATCH, BOUND, LOAD_PROCESSES};
use crate::{Item, System};

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
}

impl Latency {
    pub(crate) fn new(
        case: String,
        system: System,
        loaded: bool,
        round_trips: u64,
        runs: &[LatencySummary],
    ) -> Latency {
        let pick = |f: fn(&LatencySummary) -> u64| {
            median(&runs.iter().map(|r| f(r) as f64).collect::<Vec<_>>()) as u64
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
        }
    }
}

/// Percentiles of one run's round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LatencySummary {
    pub(crate) p50_ns: u64,
    pub(crate) p99_ns: u64,
    pub(crate) p999_ns: u64,
    pub(crate) max_ns: u64,
}

impl LatencySummary {
    /// Nearest-rank percentiles (sorts `samples`).
    pub(crate) fn from_samples(samples: &mut [u64]) -> LatencySummary {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return 0;
            }
            let rank = (q * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        LatencySummary {
            p50_ns: at(0.50),
            p99_ns: at(0.99),
            p999_ns: at(0.999),
            max_ns: samples.last().copied().unwrap_or(0),
        }
    }
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
    /// The required ratio.
    pub required: Option<f64>,
    /// Met or not.
    pub result: TargetResult,
    /// The figures the ratio comes from.
    pub detail: String,
}

pub(crate) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// `1.23 M`, `456 k`: three significant digits, SI prefix.
pub(crate) fn si(v: f64) -> String {
    let (scaled, prefix) = if v >= 1e9 {
        (v / 1e9, " G")
    } else if v >= 1e6 {
        (v / 1e6, " M")
    } else if v >= 1e3 {
        (v / 1e3, " k")
    } else {
        (v, " ")
    };
    let digits = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$}{prefix}").trim_end().to_owned()
}

/// A byte rate in decimal units (`6.30 GB/s`).
pub(crate) fn bytes_rate(v: f64) -> String {
    let s = si(v);
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{s} B/s")
    } else {
        format!("{s}B/s")
    }
}

/// A byte count in binary units (`1.5 MiB`).
pub(crate) fn bytes(v: u64) -> String {
    let v = v as f64;
    if v >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", v / (1u64 << 30) as f64)
    } else if v >= (1 << 20) as f64 {
        format!("{:.1} MiB", v / (1 << 20) as f64)
    } else if v >= 1024.0 {
        format!("{:.0} KiB", v / 1024.0)
    } else {
        format!("{v} B")
    }
}

/// A duration in ns, µs or ms.
pub(crate) fn ns(v: u64) -> String {
    let f = v as f64;
    if f >= 1e6 {
        format!("{:.2} ms", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} µs", f / 1e3)
    } else {
        format!("{v} ns")
    }
}

/// A plain text table: left-aligned first columns, right-aligned figures.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns before this index are left-aligned.
    text_cols: usize,
}

impl Table {
    fn new(head: &[&str], text_cols: usize) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            text_cols,
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let cols = self.head.len();
        let width = |i: usize| {
            std::iter::once(&self.head)
                .chain(&self.rows)
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let line = |cells: &Vec<String>, out: &mut String| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map_or("", String::as_str);
                let pad = w.saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if i < self.text_cols {
                    s.push_str(c);
                    s.extend(std::iter::repeat_n(' ', pad));
                } else {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(c);
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.head, out);
        let total: usize = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &self.rows {
            line(r, out);
        }
    }
}

/// Rows of the throughput matrices: one per configuration, in this order.
fn configurations(report: &Report) -> Vec<(System, usize, usize, usize)> {
    let mut keys = Vec::new();
    for t in &report.throughput {
        let k = (t.system, t.producers, t.maxsize, t.batch);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let rank = |s: System| match s {
        System::Procq => 0,
        System::Socket => 1,
        System::IpcChannel => 2,
        System::Crossbeam => 3,
        System::Memcpy => 4,
    };
    keys.sort_by_key(|&(s, p, m, b)| (rank(s), b, p, m == 0));
    keys
}

fn bound_label(system: System, maxsize: usize) -> String {
    match system {
        System::Procq | System::Crossbeam if maxsize > 0 => maxsize.to_string(),
        System::Procq | System::Crossbeam => "none".into(),
        _ => "-".into(),
    }
}

fn api_label(system: System, batch: usize) -> String {
    match (system, batch) {
        (System::Procq, 1) => "put/get".into(),
        (System::Procq, b) => format!("*_many({b})"),
        (System::Socket, _) => "write/read".into(),
        (System::IpcChannel, _) => "send/recv".into(),
        (System::Crossbeam, _) => "threads".into(),
        (System::Memcpy, _) => "1 thread".into(),
    }
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

    pub(crate) fn finish(&mut self, seconds: f64) {
        self.seconds = seconds;
        self.targets = self.compute_targets();
    }

    /// The throughput case with these parameters, if it ran.
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
        self.throughput.iter().find(|t| {
            t.system == system
                && t.producers == producers
                && t.item_bytes == item.nominal_bytes()
                && t.maxsize == maxsize
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

    fn compute_targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let tp = |s, p, item, m, b| self.find_throughput(s, p, item, m, b);
        let mut ratio = |name: String,
                         a: Option<&Throughput>,
                         b: Option<&Throughput>,
                         bytes: bool,
                         need: f64| {
            let (measured, detail) = match (a, b) {
                (Some(a), Some(b)) => {
                    let (x, y) = if bytes {
                        (a.bytes_per_sec, b.bytes_per_sec)
                    } else {
                        (a.items_per_sec, b.items_per_sec)
                    };
                    let fmt = |v| {
                        if bytes {
                            bytes_rate(v)
                        } else {
                            si(v) + " items/s"
                        }
                    };
                    (Some(x / y.max(1e-9)), format!("{} vs {}", fmt(x), fmt(y)))
                }
                _ => (None, "not measured in this run".into()),
            };
            out.push(ratio_target(name, measured, ">=", need, detail));
        };
        for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
            ratio(
                format!("1P/1C 8 B {label}: procq / socket"),
                tp(System::Procq, 1, Item::U64, m, 1),
                tp(System::Socket, 1, Item::U64, 0, 1),
                false,
                10.0,
            );
            ratio(
                format!("1P/1C 8 B {label}: procq / crossbeam (threads)"),
                tp(System::Procq, 1, Item::U64, m, 1),
                tp(System::Crossbeam, 1, Item::U64, m, 1),
                false,
                0.5,
            );
        }
        let mib = Item::Bytes(1 << 20);
        for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
            ratio(
                format!("1P/1C 1 MiB {label}: procq / memcpy bandwidth"),
                tp(System::Procq, 1, mib, m, 1),
                tp(System::Memcpy, 1, mib, 0, 1),
                true,
                0.5,
            );
            ratio(
                format!("1P/1C 1 MiB {label}: procq / socket"),
                tp(System::Procq, 1, mib, m, 1),
                tp(System::Socket, 1, mib, 0, 1),
                true,
                2.0,
            );
        }
        for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
            ratio(
                format!("8 B {label}: put_many/get_many({BATCH}) / put/get"),
                tp(System::Procq, 1, Item::U64, m, BATCH),
                tp(System::Procq, 1, Item::U64, m, 1),
                false,
                3.0,
            );
        }
        for (m, label) in [(0, "unbounded"), (BOUND, "bounded")] {
            ratio(
                format!("8 B {label}: procq 4P/4C total / 1P/1C"),
                tp(System::Procq, 4, Item::U64, m, 1),
                tp(System::Procq, 1, Item::U64, m, 1),
                false,
                0.5,
            );
        }
        let lat = |s, l| self.find_latency(s, l);
        let (measured, detail) = match (lat(System::Procq, false), lat(System::Socket, false)) {
            (Some(a), Some(b)) => (
                Some(a.p50_ns as f64 / (b.p50_ns as f64).max(1.0)),
                format!("p50 {} vs {}", ns(a.p50_ns), ns(b.p50_ns)),
            ),
            _ => (None, "not measured in this run".into()),
        };
        out.push(ratio_target(
            "latency p50: procq / socket".into(),
            measured,
            "<=",
            0.2,
            detail,
        ));
        let loaded = lat(System::Procq, true);
        let sock = lat(System::Socket, true);
        out.push(Target {
            name: format!("latency p99, {LOAD_PROCESSES} busy processes: procq / socket"),
            measured: match (loaded, sock) {
                (Some(a), Some(b)) => Some(a.p99_ns as f64 / (b.p99_ns as f64).max(1.0)),
                _ => None,
            },
            comparison: String::new(),
            required: None,
            result: if loaded.is_some() {
                TargetResult::Reported
            } else {
                TargetResult::Missing
            },
            detail: match (loaded, sock) {
                (Some(a), Some(b)) => format!(
                    "p99 {} (p99.9 {}) vs socket {}",
                    ns(a.p99_ns),
                    ns(a.p999_ns),
                    ns(b.p99_ns)
                ),
                (Some(a), None) => format!("p99 {} (p99.9 {})", ns(a.p99_ns), ns(a.p999_ns)),
                _ => "not measured in this run".into(),
            },
        });
        let (measured, detail) = match &self.memory {
            Some(m) => (
                Some(m.drained_resident_bytes as f64 / (m.idle_resident_bytes as f64).max(1.0)),
                format!(
                    "{} after {} fill+drain vs {} idle",
                    bytes(m.drained_resident_bytes),
                    bytes(m.fill_bytes),
                    bytes(m.idle_resident_bytes)
                ),
            ),
            None => (None, "not measured in this run".into()),
        };
        out.push(ratio_target(
            "memory after fill+drain / idle".into(),
            measured,
            "<=",
            2.0,
            detail,
        ));
        out
    }

    /// The report as aligned plain-text tables.
    ///
    /// ```
    /// let table = procq_bench::Report::default().to_table();
    /// assert!(table.contains("Targets"));
    /// ```
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "procq-bench {} mode: {} CPUs ({}), kernel {}, load {:.2} at start; {} measured run(s) per case, medians; {:.0} s in all",
            self.mode,
            self.machine.cpus,
            if self.machine.cpu_model.is_empty() { "?" } else { &self.machine.cpu_model },
            self.machine.kernel,
            self.machine.load_average,
            self.runs_per_case,
            self.seconds
        );
        if self.mode == "quick" {
            out.push_str("(quick mode: a smoke test with few items per case; figures are rough)\n");
        }
        if !self.throughput.is_empty() {
            let sizes: Vec<Item> = Item::ALL
                .into_iter()
                .filter(|i| {
                    self.throughput
                        .iter()
                        .any(|t| t.item_bytes == i.nominal_bytes())
                })
                .collect();
            for (title, bytes_col) in [
                (
                    "Throughput, items/s (P producers -> C consumers; consumer side, end to end)",
                    false,
                ),
                (
                    "Throughput, bytes/s (items/s x item size; GB = 10^9 B)",
                    true,
                ),
            ] {
                let _ = writeln!(out, "\n{title}");
                let mut head = vec!["system", "P/C", "bound", "api"];
                let labels: Vec<String> = sizes.iter().map(|i| i.label()).collect();
                head.extend(labels.iter().map(String::as_str));
                let mut t = Table::new(&head, 4);
                for (system, p, maxsize, batch) in configurations(self) {
                    let mut row = vec![
                        system.to_string(),
                        if matches!(system, System::Memcpy) {
                            "-".into()
                        } else {
                            format!("{p}/{p}")
                        },
                        bound_label(system, maxsize),
                        api_label(system, batch),
                    ];
                    for &item in &sizes {
                        row.push(
                            match self.find_throughput(system, p, item, maxsize, batch) {
                                Some(r) if bytes_col => bytes_rate(r.bytes_per_sec),
                                Some(r) => si(r.items_per_sec),
                                None => "-".into(),
                            },
                        );
                    }
                    t.row(row);
                }
                t.render(&mut out);
            }
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                out,
                "\nRound-trip latency, 8 B ping-pong over two queues (crossbeam: two threads)"
            );
            let mut t = Table::new(
                &[
                    "system",
                    "load",
                    "round trips",
                    "p50",
                    "p99",
                    "p99.9",
                    "max",
                ],
                2,
            );
            for l in &self.latency {
                t.row(vec![
                    l.system.to_string(),
                    if l.oversubscribed {
                        format!("{} busy processes", l.load_processes)
                    } else {
                        "idle".into()
                    },
                    l.round_trips.to_string(),
                    ns(l.p50_ns),
                    ns(l.p99_ns),
                    ns(l.p999_ns),
                    ns(l.max_ns),
                ]);
            }
            t.render(&mut out);
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                out,
                "\nMemory, unbounded queue, {} of {} items put at once, then drained",
                bytes(m.fill_bytes),
                bytes(m.item_bytes)
            );
            let mut t = Table::new(&["state", "queue resident", "process RSS"], 1);
            t.row(vec![
                "idle".into(),
                bytes(m.idle_resident_bytes),
                bytes(m.idle_rss_bytes),
            ]);
            t.row(vec![
                "full".into(),
                bytes(m.full_resident_bytes),
                "-".into(),
            ]);
            t.row(vec![
                "drained".into(),
                bytes(m.drained_resident_bytes),
                bytes(m.drained_rss_bytes),
            ]);
            t.render(&mut out);
        }
        let _ = writeln!(out, "\nTargets (issue \"Performance\")");
        let mut t = Table::new(&["target", "measured", "required", "result", "from"], 1);
        for g in &self.targets {
            t.row(vec![
                g.name.clone(),
                g.measured.map_or("-".into(), |v| format!("{v:.2}x")),
                match g.required {
                    Some(r) => format!("{} {r}x", if g.comparison == "<=" { "<=" } else { ">=" }),
                    None => "-".into(),
                },
                match g.result {
                    TargetResult::Met => "met",
                    TargetResult::NotMet => "NOT MET",
                    TargetResult::Reported => "reported",
                    TargetResult::Missing => "n/a",
                }
                .into(),
                g.detail.clone(),
            ]);
        }
        t.render(&mut out);
        for e in &self.errors {
            let _ = writeln!(out, "\nFAILED {}: {}", e.case, e.error);
        }
        if !self.stale_segments_removed.is_empty() {
            let _ = writeln!(
                out,
                "\nRemoved queue segments of earlier, killed runs: {}",
                self.stale_segments_removed.join(", ")
            );
        }
        if self.leaked_segments.is_empty() {
            out.push_str("\nNo queue segments left in /dev/shm.\n");
        } else {
            let _ = writeln!(
                out,
                "\nLEAKED queue segments (removed now): {}",
                self.leaked_segments.join(", ")
            );
        }
        out
    }
}

fn ratio_target(
    name: String,
    measured: Option<f64>,
    comparison: &str,
    required: f64,
    detail: String,
) -> Target {
    let result = match measured {
        None => TargetResult::Missing,
        Some(v) if comparison == "<=" && v <= required => TargetResult::Met,
        Some(v) if comparison == ">=" && v >= required => TargetResult::Met,
        Some(_) => TargetResult::NotMet,
    };
    Target {
        name,
        measured,
        comparison: comparison.into(),
        required: Some(required),
        result,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = LatencySummary::from_samples(&mut v);
        assert_eq!(
            (s.p50_ns, s.p99_ns, s.p999_ns, s.max_ns),
            (500, 990, 999, 1000)
        );
        assert_eq!(LatencySummary::from_samples(&mut []).p50_ns, 0);
        assert_eq!(LatencySummary::from_samples(&mut [7]).p999_ns, 7);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn units_read_well() {
        assert_eq!(si(2_310_000.0), "2.31 M");
        assert_eq!(si(845_000.0), "845 k");
        assert_eq!(si(12.0), "12.0");
        assert_eq!(bytes_rate(6.3e9), "6.30 GB/s");
        assert_eq!(bytes_rate(500.0), "500 B/s");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(ns(13_700), "13.7 µs");
        assert_eq!(ns(850), "850 ns");
    }

    fn tp(
        system: System,
        p: usize,
        item: Item,
        maxsize: usize,
        batch: usize,
        rate: f64,
    ) -> Throughput {
        let f = Flow {
            system,
            producers: p,
            consumers: p,
            item,
            maxsize,
            batch,
        };
        Throughput::new("x".into(), f, rate as u64, &[1.0])
    }

    #[test]
    fn targets_compare_the_right_cases() {
        let mut r = Report::new(true, 1);
        r.throughput
            .push(tp(System::Procq, 1, Item::U64, 0, 1, 12e6));
        r.throughput
            .push(tp(System::Socket, 1, Item::U64, 0, 1, 1e6));
        r.throughput
            .push(tp(System::Procq, 4, Item::U64, 0, 1, 3e6));
        r.finish(1.0);
        let get = |name: &str| r.targets.iter().find(|t| t.name == name).unwrap();
        let sock = get("1P/1C 8 B unbounded: procq / socket");
        assert_eq!(sock.result, TargetResult::Met);
        assert!((sock.measured.unwrap() - 12.0).abs() < 1e-9);
        assert_eq!(
            get("8 B unbounded: procq 4P/4C total / 1P/1C").result,
            TargetResult::NotMet
        );
        assert_eq!(
            get("1P/1C 8 B bounded: procq / socket").result,
            TargetResult::Missing
        );
        let table = r.to_table();
        assert!(
            table.contains("NOT MET") && table.contains("12.00x"),
            "{table}"
        );
    }

    #[test]
    fn table_columns_align() {
        let mut t = Table::new(&["name", "value"], 1);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "100".into()]);
        let mut s = String::new();
        t.render(&mut s);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "name    value");
        assert_eq!(lines[2], "a           1");
        assert_eq!(lines[3], "longer    100");
    }
}
