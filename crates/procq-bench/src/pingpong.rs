//! The latency cases: ping-pong of `u64`s between two processes (two
//! threads for crossbeam), idle or with busy load processes.

use std::time::Instant;

use crate::case::{Case, BOUND, LOAD_PROCESSES};
use crate::ctx::{repeat, Ctx, ShmFile, SocketPath};
use crate::harness::{Crew, Result};
use crate::model::{CpuUse, Latency};
use crate::stats::LatencySummary;
use crate::system::System;
use crate::worker::{thread_cpu_ns, Role};

pub(crate) fn measure(ctx: &Ctx, system: System, loaded: bool) -> Result<Latency> {
    let quick_n = 2_000;
    let (n, runs) = repeat(
        ctx,
        quick_n,
        200_000,
        |r: &Run| r.secs,
        |n| ping_pong(ctx, system, loaded, n),
    )?;
    let summaries: Vec<LatencySummary> = runs.iter().map(|r| r.summary).collect();
    let cpu: Vec<Option<CpuUse>> = runs.iter().map(|r| r.cpu).collect();
    Ok(Latency::new(
        Case::Latency { system, loaded }.id(),
        system,
        loaded,
        n,
        &summaries,
        &cpu,
    ))
}

/// What one ping-pong run measured.
struct Run {
    /// Percentiles of the timed round trips.
    summary: LatencySummary,
    /// The run's wall time, warm-up included.
    secs: f64,
    /// CPU time of both sides over the same span.
    cpu: Option<CpuUse>,
}

/// The CPU use of a run of `round_trips` round trips (warm-up included)
/// that lasted `secs`, from both sides' CPU ns.
fn cpu_use(
    pinger_ns: Option<u64>,
    ponger_ns: Option<u64>,
    round_trips: u64,
    secs: f64,
) -> Option<CpuUse> {
    let total = pinger_ns? as f64 + ponger_ns? as f64;
    Some(CpuUse {
        ns_per_round_trip: total / round_trips.max(1) as f64,
        cores: total / (secs * 1e9).max(1.0),
    })
}

/// One ping-pong run of `n` timed round trips.
fn ping_pong(ctx: &Ctx, system: System, loaded: bool, n: u64) -> Result<Run> {
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
    let mut files = Vec::new();
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
        System::Ipmpsc => {
            let (ping, pong) = (ShmFile::new(ctx), ShmFile::new(ctx));
            let ponger = crew.spawn(
                "ponger",
                &Role::IpmpscPonger {
                    ping: ping.as_string(),
                    pong: pong.as_string(),
                    count: warmup + n,
                },
            )?;
            let pinger = crew.spawn(
                "pinger",
                &Role::IpmpscPinger {
                    ping: ping.as_string(),
                    pong: pong.as_string(),
                    warmup,
                    round_trips: n,
                },
            )?;
            files.extend([ping, pong]);
            (pinger.0, ponger.0)
        }
        System::Iceoryx2 => {
            let (ping, pong) = (ctx.fresh(), ctx.fresh());
            let ponger = crew.spawn(
                "ponger",
                &Role::Iceoryx2Ponger {
                    ping: ping.clone(),
                    pong: pong.clone(),
                    count: warmup + n,
                },
            )?;
            let pinger = crew.spawn(
                "pinger",
                &Role::Iceoryx2Pinger {
                    ping,
                    pong,
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
    let ponged = crew.done(ponger, deadline)?;
    for &l in &loads {
        crew.close_stdin(l);
    }
    for &l in &loads {
        crew.done(l, deadline)?;
    }
    crew.finish(deadline)?;
    drop(load_queue);
    drop(queues);
    drop(files);
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
    let secs = done.end_ns.saturating_sub(start) as f64 / 1e9;
    Ok(Run {
        summary,
        secs,
        cpu: cpu_use(
            v.get(4).copied(),
            ponged.values.first().copied(),
            warmup + n,
            secs,
        ),
    })
}

fn crossbeam_ping_pong(warmup: u64, n: u64) -> Result<Run> {
    let (ping_tx, ping_rx) = crossbeam_channel::unbounded::<u64>();
    let (pong_tx, pong_rx) = crossbeam_channel::unbounded::<u64>();
    let start = Instant::now();
    let mut samples = Vec::with_capacity(n as usize);
    let cpu_start = thread_cpu_ns();
    let ponger_cpu = std::thread::scope(|s| {
        let ponger = s.spawn(move || {
            let cpu_start = thread_cpu_ns();
            for v in ping_rx.iter() {
                if pong_tx.send(v).is_err() {
                    break;
                }
            }
            thread_cpu_ns() - cpu_start
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
        ponger
            .join()
            .map_err(|_| "ponger thread panicked".to_owned())
    })?;
    let pinger_cpu = thread_cpu_ns() - cpu_start;
    let secs = start.elapsed().as_secs_f64();
    Ok(Run {
        summary: LatencySummary::from_samples(&mut samples),
        secs,
        cpu: cpu_use(Some(pinger_cpu), Some(ponger_cpu), warmup + n, secs),
    })
}
