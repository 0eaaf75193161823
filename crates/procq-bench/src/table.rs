//! The report as aligned plain-text tables.

use std::fmt::Write as _;

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
