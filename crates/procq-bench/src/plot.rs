//! The report as an SVG chart (plotters' SVG backend: no fonts or system
//! libraries needed; text is left to the SVG viewer).
//!
//! Four panels of grouped bars on log scales: 1P/1C items/s and bytes/s
//! per item size for procq and every baseline, procq's scaling with
//! producers and consumers, and round-trip latency.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::case::BOUND;
use crate::item::Item;
use crate::model::Report;
use crate::system::System;
use crate::units::si;

/// One bar series: a name, a colour and a value (or none) per category.
struct Series {
    name: String,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

const PROCQ: RGBColor = RGBColor(31, 119, 180);
const PROCQ_BOUNDED: RGBColor = RGBColor(120, 170, 220);
const SOCKET: RGBColor = RGBColor(214, 39, 40);
const IPC: RGBColor = RGBColor(255, 127, 14);
const CROSSBEAM: RGBColor = RGBColor(44, 160, 44);
const MEMCPY: RGBColor = RGBColor(127, 127, 127);

type PlotResult<T> = std::result::Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing the chart: {e}")
}

impl Report {
    /// Writes the report as an SVG chart to `path`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("procq-bench-doc-{}.svg", std::process::id()));
    /// procq_bench::Report::default().write_svg(&path)?;
    /// assert!(std::fs::read_to_string(&path)?.starts_with("<svg"));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_svg(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_svg().map_err(std::io::Error::other)?)
    }

    /// The report as an SVG document.
    ///
    /// ```
    /// assert!(procq_bench::Report::default().to_svg()?.contains("</svg>"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn to_svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1400, 900)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let root = root
                .titled(
                    &format!(
                        "procq-bench ({} mode, {} CPUs, medians of {} run(s))",
                        self.mode, self.machine.cpus, self.runs_per_case
                    ),
                    ("sans-serif", 24),
                )
                .map_err(err)?;
            let panels = root.split_evenly((2, 2));
            let sizes: Vec<String> = Item::ALL.iter().map(|i| i.label()).collect();
            let one = |system, maxsize, bytes: bool| -> Vec<Option<f64>> {
                Item::ALL
                    .iter()
                    .map(|&i| {
                        self.find_throughput(system, 1, i, maxsize, 1).map(|t| {
                            if bytes {
                                t.bytes_per_sec
                            } else {
                                t.items_per_sec
                            }
                        })
                    })
                    .collect()
            };
            let baselines = |bytes: bool| {
                let mut s = vec![
                    series("procq, unbounded", PROCQ, one(System::Procq, 0, bytes)),
                    series(
                        &format!("procq, maxsize {BOUND}"),
                        PROCQ_BOUNDED,
                        one(System::Procq, BOUND, bytes),
                    ),
                    series("Unix socket", SOCKET, one(System::Socket, 0, bytes)),
                    series("ipc-channel", IPC, one(System::IpcChannel, 0, bytes)),
                    series(
                        "crossbeam (threads)",
                        CROSSBEAM,
                        one(System::Crossbeam, 0, bytes),
                    ),
                ];
                if bytes {
                    s.push(series("memcpy", MEMCPY, one(System::Memcpy, 0, bytes)));
                }
                s
            };
            grouped(
                &panels[0],
                "1 producer -> 1 consumer: items/s",
                &sizes,
                &baselines(false),
                SeriesLabelPosition::UpperRight,
            )?;
            grouped(
                &panels[1],
                "1 producer -> 1 consumer: bytes/s",
                &sizes,
                &baselines(true),
                SeriesLabelPosition::UpperLeft,
            )?;
            let scaling: Vec<Series> = [(1, PROCQ_BOUNDED), (2, PROCQ), (4, RGBColor(23, 60, 110))]
                .into_iter()
                .map(|(p, color)| {
                    let values = Item::ALL
                        .iter()
                        .map(|&i| {
                            self.find_throughput(System::Procq, p, i, 0, 1)
                                .map(|t| t.items_per_sec)
                        })
                        .collect();
                    series(&format!("procq {p}P/{p}C"), color, values)
                })
                .collect();
            grouped(
                &panels[2],
                "procq (unbounded) with more processes: items/s, total",
                &sizes,
                &scaling,
                SeriesLabelPosition::UpperRight,
            )?;
            let cats: Vec<String> = ["p50 idle", "p99 idle", "p50 busy", "p99 busy"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let lat = |system| -> Vec<Option<f64>> {
                [(false, false), (false, true), (true, false), (true, true)]
                    .iter()
                    .map(|&(loaded, p99)| {
                        self.find_latency(system, loaded)
                            .map(|l| (if p99 { l.p99_ns } else { l.p50_ns }) as f64 / 1e3)
                    })
                    .collect()
            };
            grouped(
                &panels[3],
                "round trip, 8 B ping-pong: microseconds (lower is better)",
                &cats,
                &[
                    series("procq", PROCQ, lat(System::Procq)),
                    series("Unix socket", SOCKET, lat(System::Socket)),
                    series("crossbeam (threads)", CROSSBEAM, lat(System::Crossbeam)),
                ],
                SeriesLabelPosition::UpperLeft,
            )?;
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

fn series(name: &str, color: RGBColor, values: Vec<Option<f64>>) -> Series {
    Series {
        name: name.to_owned(),
        color,
        values,
    }
}

/// Draws grouped bars, one group per category, on a log scale.
fn grouped(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    cats: &[String],
    series: &[Series],
    legend: SeriesLabelPosition,
) -> PlotResult<()> {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    if values.is_empty() {
        area.draw_text(
            &format!("{title}: not measured"),
            &("sans-serif", 16).into_text_style(area),
            (20, 40),
        )
        .map_err(err)?;
        return Ok(());
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    let lo = 10f64.powf(min.log10().floor());
    // Two extra decades of headroom keep the legend clear of the bars.
    let hi = 10f64.powf(max.log10().ceil() + 2.0);
    let n = cats.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())
        .map_err(err)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            cats[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(4 * n + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&|v| si(*v))
        .draw()
        .map_err(err)?;
    let width = 0.8 / series.len() as f64;
    for (j, s) in series.iter().enumerate() {
        let color = s.color;
        let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let x0 = i as f64 - 0.4 + j as f64 * width;
            Some(Rectangle::new(
                [(x0, lo), (x0 + width * 0.9, v.max(lo))],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}
