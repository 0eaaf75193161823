//! The report as aligned plain-text tables.

use std::fmt::Write as _;

use crate::case::{peer_bound, BOUND};
use crate::item::Item;
use crate::model::{Report, TargetResult};
use crate::system::System;
use crate::units::{bytes, bytes_rate, ns, si};

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

/// One row of the side-by-side table: label, the peers' figures, procq's,
/// and whether the figures are latencies (lower is better).
type Headline = (String, Vec<Option<f64>>, Option<f64>, bool);

/// One row of the throughput matrices: system, producers, consumers,
/// bound (`None` for the peers and procq's zero-copy row, whose bound
/// depends on the item size), batch.
type Config = (System, usize, usize, Option<usize>, usize);

/// Rows of the throughput matrices: one per configuration, in this order.
fn configurations(report: &Report) -> Vec<Config> {
    let mut keys = Vec::new();
    for t in &report.throughput {
        // One row per system whose bound depends on the item size.
        let per_item = t.system.is_peer() || t.system == System::ProcqZeroCopy;
        let bound = (!per_item).then_some(t.maxsize);
        let k = (t.system, t.producers, t.consumers, bound, t.batch);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let rank = |s: System| match s {
        System::Procq => 0,
        System::ProcqZeroCopy => 1,
        System::Socket => 2,
        System::IpcChannel => 3,
        System::Ipmpsc => 4,
        System::IpmpscBytes => 5,
        System::Iceoryx2 => 6,
        System::Iceoryx2ZeroCopy => 7,
        System::Crossbeam => 8,
        System::Memcpy => 9,
    };
    keys.sort_by_key(|&(s, p, c, m, b)| (rank(s), b, p != c, p, c, m == Some(0)));
    keys
}

fn bound_label(system: System, maxsize: Option<usize>) -> String {
    match (system, maxsize) {
        (System::Procq | System::ProcqZeroCopy | System::Crossbeam, Some(0)) => "none".into(),
        (System::Procq | System::ProcqZeroCopy | System::Crossbeam, Some(m)) => m.to_string(),
        (_, None) => format!("<={BOUND}"),
        _ => "-".into(),
    }
}

fn api_label(system: System, batch: usize) -> String {
    match (system, batch) {
        (System::Procq, 1) => "put/get".into(),
        (System::Procq, b) => format!("*_many({b})"),
        (System::ProcqZeroCopy, _) => "put_with/get_with, in place".into(),
        (System::Socket, _) => "write/read".into(),
        (System::IpcChannel, _) => "send/recv".into(),
        (System::Ipmpsc, _) => "bincode".into(),
        (System::IpmpscBytes, _) => "serde_bytes".into(),
        (System::Iceoryx2, _) => "copy out, polling".into(),
        (System::Iceoryx2ZeroCopy, _) => "in place, polling".into(),
        (System::Crossbeam, _) => "threads".into(),
        (System::Memcpy, _) => "1 thread".into(),
    }
}

impl Report {
    /// The report as aligned plain-text tables: the comparison with the
    /// baselines, then failures and leaks (the issue's targets are in
    /// [`Report::to_table_with_targets`]).
    ///
    /// ```
    /// let table = procq_bench::Report::default().to_table();
    /// assert!(table.contains("No queue segments left") && !table.contains("Targets"));
    /// ```
    pub fn to_table(&self) -> String {
        self.render(false)
    }

    /// [`Report::to_table`] with the table of the "Performance" issue's
    /// targets (each met or not) before the failures.
    ///
    /// ```
    /// let table = procq_bench::Report::default().to_table_with_targets();
    /// assert!(table.contains("Targets"));
    /// ```
    pub fn to_table_with_targets(&self) -> String {
        self.render(true)
    }

    fn render(&self, with_targets: bool) -> String {
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
        self.render_side_by_side(&mut out);
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
                for (system, p, c, maxsize, batch) in configurations(self) {
                    let mut row = vec![
                        system.to_string(),
                        if matches!(system, System::Memcpy) {
                            "-".into()
                        } else {
                            format!("{p}/{c}")
                        },
                        bound_label(system, maxsize),
                        api_label(system, batch),
                    ];
                    for &item in &sizes {
                        row.push(match self.find_flow(system, (p, c), item, maxsize, batch) {
                            Some(r) if bytes_col => bytes_rate(r.bytes_per_sec),
                            Some(r) => si(r.items_per_sec),
                            None => "-".into(),
                        });
                    }
                    t.row(row);
                }
                t.render(&mut out);
            }
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                out,
                "\nRound-trip latency, 8 B ping-pong over two queues (crossbeam: two threads); \
                 CPU: user + system time of both sides (not the load), per round trip and \
                 as cores kept busy over the run"
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
                    "CPU/round trip",
                    "cores busy",
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
                    l.cpu_ns_per_round_trip.map_or("-".into(), ns),
                    l.cpu_cores.map_or("-".into(), |c| format!("{c:.2}")),
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
        if with_targets {
            self.render_targets(&mut out);
        }
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
    /// The headline: procq beside each peer on the same items in the same
    /// run (1 producer process -> 1 consumer process), with procq's speed
    /// relative to each (above 1: procq is faster).
    fn render_side_by_side(&self, out: &mut String) {
        const PEERS: [System; 6] = [
            System::Socket,
            System::Ipmpsc,
            System::IpmpscBytes,
            System::Iceoryx2,
            System::Iceoryx2ZeroCopy,
            System::Memcpy,
        ];
        let rate = |s: System, item: Item| {
            let bound = match s {
                System::Procq => Some(peer_bound(item)),
                System::Socket | System::Memcpy => Some(0),
                _ => None,
            };
            self.find_flow(s, (1, 1), item, bound, 1)
                .map(|t| t.items_per_sec)
        };
        let rows: Vec<Headline> = [
            ("u64", Item::U64),
            ("100 B", Item::Bytes(100)),
            ("1 MiB", Item::Bytes(1 << 20)),
        ]
        .into_iter()
        .map(|(label, item)| {
            let cells: Vec<Option<f64>> = PEERS.iter().map(|&s| rate(s, item)).collect();
            (
                format!("{label} items/s"),
                cells,
                rate(System::Procq, item),
                false,
            )
        })
        .chain(std::iter::once({
            let p50 = |s| self.find_latency(s, false).map(|l| l.p50_ns as f64);
            let cells = PEERS
                .iter()
                .map(|&s| {
                    if s == System::Socket || s == System::Ipmpsc || s == System::Iceoryx2 {
                        p50(s)
                    } else {
                        None
                    }
                })
                .collect();
            ("ping-pong p50".to_owned(), cells, p50(System::Procq), true)
        }))
        .filter(|(_, cells, procq, _)| procq.is_some() && cells.iter().any(|c| c.is_some()))
        .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nSide by side, 1 producer process -> 1 consumer process, same items, same run \
             (procq and peers: <= {BOUND} items, 16 at 1 MiB; iceoryx2 busy-polls)"
        );
        let mut t = Table::new(
            &[
                "case",
                "socket",
                "ipmpsc",
                "ipmpsc bytes",
                "iceoryx2 copy",
                "iceoryx2 0-copy",
                "memcpy",
                "procq",
                "procq/socket",
                "procq/ipmpsc",
                "procq/iceoryx2",
            ],
            1,
        );
        for (label, cells, procq, latency) in rows {
            let fmt = |v: Option<f64>| match v {
                Some(v) if latency => ns(v as u64),
                Some(v) => si(v),
                None => "-".into(),
            };
            let mut row = vec![label];
            row.extend(cells.iter().map(|&c| fmt(c)));
            row.push(fmt(procq));
            // procq's speed relative to the peer: rates divide one way,
            // latencies the other.
            let speed = |peer: Option<f64>| match (procq, peer) {
                (Some(p), Some(x)) if latency => format!("{:.2}x", x / p.max(1e-9)),
                (Some(p), Some(x)) => format!("{:.2}x", p / x.max(1e-9)),
                _ => "-".into(),
            };
            let best = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            row.push(speed(cells[0]));
            // Against ipmpsc's faster variant, and iceoryx2's owned copy-out.
            row.push(speed(if latency {
                cells[1]
            } else {
                best(cells[1], cells[2])
            }));
            row.push(speed(cells[3]));
            t.row(row);
        }
        t.render(out);
    }

    fn render_targets(&self, out: &mut String) {
        let _ = writeln!(out, "\nTargets (issue \"Performance\")");
        let mut t = Table::new(&["target", "measured", "required", "result", "from"], 1);
        for g in &self.targets {
            t.row(vec![
                g.name.clone(),
                g.measured
                    .map_or("-".into(), |v| format!("{v:.2}{}", unit(&g.unit))),
                match g.required {
                    Some(r) => format!(
                        "{} {r}{}",
                        if g.comparison == "<=" { "<=" } else { ">=" },
                        unit(&g.unit)
                    ),
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
        t.render(out);
    }
}

/// How a target's figures are suffixed: `x` for a ratio (no unit), else
/// ` <unit>`.
fn unit(unit: &str) -> String {
    if unit.is_empty() {
        "x".into()
    } else {
        format!(" {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
