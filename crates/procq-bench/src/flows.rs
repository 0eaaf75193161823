//! The throughput cases: procq and every baseline moving the same items
//! from producers to consumers, timed consumer side, end to end, with the
//! consumers' checksums checked.

use std::sync::Barrier;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::case::{Case, Flow};
use crate::ctx::{quick_items, repeat, Ctx, ShmFile, SocketPath, MAX_RUN_BYTES, MAX_RUN_ITEMS};
use crate::harness::{Crew, Result};
use crate::item::Item;
use crate::model::Throughput;
use crate::system::System;
use crate::worker::Role;

pub(crate) fn measure(ctx: &Ctx, flow: Flow) -> Result<Throughput> {
    let quick_n = quick_items(flow.item);
    let max_n = if backlog_bounded(flow) {
        MAX_RUN_ITEMS
    } else {
        (MAX_RUN_BYTES / flow.item.nominal_bytes()).min(MAX_RUN_ITEMS)
    };
    let (n, secs) = repeat(ctx, quick_n, max_n, |s| *s, |n| run_flow(ctx, flow, n))?;
    Ok(Throughput::new(Case::Throughput(flow).id(), flow, n, &secs))
}

/// Whether what a run's producers can put ahead of its consumers is
/// bounded (a maxsize, a fixed ring, a kernel buffer), so the run may move
/// as many bytes as [`TARGET_SECS`](crate::ctx::TARGET_SECS) needs. Only the
/// others are held to [`MAX_RUN_BYTES`], which bounds the memory a backlog
/// can take; at 1 MiB that cap made a run of a fast bounded queue last
/// 50–100 ms, and one scheduler hiccup moved its median of 3 by 1.5×.
fn backlog_bounded(f: Flow) -> bool {
    match f.system {
        System::Procq | System::ProcqZeroCopy | System::Crossbeam => f.maxsize > 0,
        System::IpcChannel => false,
        System::Socket
        | System::Memcpy
        | System::Ipmpsc
        | System::IpmpscBytes
        | System::Iceoryx2
        | System::Iceoryx2ZeroCopy => true,
    }
}

fn run_flow(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    match (f.system, f.item) {
        (System::Procq, Item::U64) => run_procq::<u64>(ctx, f, n),
        (System::Procq, Item::Bytes(_)) => run_procq::<Vec<u8>>(ctx, f, n),
        (System::ProcqZeroCopy, _) => run_procq_loans(ctx, f, n),
        (System::Socket, _) => run_socket(ctx, f, n),
        (System::IpcChannel, _) => run_ipc(ctx, f, n),
        (System::Crossbeam, _) => run_crossbeam(f, n),
        (System::Memcpy, _) => run_memcpy(f.item, n),
        (System::Ipmpsc | System::IpmpscBytes, _) => run_ipmpsc(ctx, f, n),
        (System::Iceoryx2 | System::Iceoryx2ZeroCopy, _) => run_iceoryx2(ctx, f, n),
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
    // The warm-up is split like the run: every producer puts, and every
    // consumer gets, its share before `go`, so the queue is empty again
    // when the clock starts.
    let warm = warmup_items(ctx, f);
    let mut warm_puts = split(warm, f.producers).into_iter();
    let mut warm_gets = split(warm, f.consumers).into_iter();
    let secs = run_procq_crew(ctx, f, n, |producer, items| {
        let (queue, item, batch) = (name.clone(), f.item, f.batch);
        if producer {
            let warmup = warm_puts.next().unwrap_or(0);
            Role::ProcqProducer {
                queue,
                item,
                warmup,
                items,
                batch,
            }
        } else {
            let warmup = warm_gets.next().unwrap_or(0);
            Role::ProcqConsumer {
                queue,
                item,
                warmup,
                items,
                batch,
            }
        }
    })?;
    if q.qsize() != 0 {
        return Err(format!("{} items left in the queue", q.qsize()));
    }
    Ok(secs)
}

/// procq's zero-copy loans: an untyped queue, each item written in place
/// by `RawQueue::put_with` and read in place by `RawQueue::get_with`.
fn run_procq_loans(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    let name = ctx.fresh();
    let q = procq::Builder::new()
        .name(&name)
        .maxsize(f.maxsize)
        .build_raw()
        .map_err(|e| format!("creating queue: {e}"))?;
    let len = f.item.nominal_bytes() as usize;
    let warm = warmup_items(ctx, f);
    let (mut warm_puts, mut warm_gets) = (
        split(warm, f.producers).into_iter(),
        split(warm, f.consumers).into_iter(),
    );
    let secs = run_procq_crew(ctx, f, n, |producer, items| {
        let queue = name.clone();
        if producer {
            let warmup = warm_puts.next().unwrap_or(0);
            Role::ProcqLoanProducer {
                queue,
                len,
                warmup,
                items,
            }
        } else {
            let warmup = warm_gets.next().unwrap_or(0);
            Role::ProcqLoanConsumer {
                queue,
                len,
                warmup,
                items,
            }
        }
    })?;
    if q.qsize() != 0 {
        return Err(format!("{} items left in the queue", q.qsize()));
    }
    Ok(secs)
}

/// Items the workers of a procq case (typed or zero-copy) and of an iceoryx2
/// case move through their queue before the clock starts (full mode only),
/// the same rule for both sides of a comparison, so that the run measures the steady
/// state of a queue in use, as a long-running program sees it: a fresh
/// queue's ring grows as deep as the run drives it, and every process
/// faults in each page of it on first touch — with 8 processes at 64 KiB,
/// about six faults per item, which a timed run of a few seconds would
/// otherwise count (see docs/performance-history.md). As many items as the bound
/// (1024 unbounded), at most 512 MiB of them.
pub(crate) fn warmup_items(ctx: &Ctx, f: Flow) -> u64 {
    if ctx.quick {
        return 0;
    }
    let depth = if f.maxsize == 0 {
        1024
    } else {
        f.maxsize as u64
    };
    depth.min((512 << 20) / f.item.nominal_bytes()).max(1)
}

/// Starts `f.consumers` consumers and `f.producers` producers of a procq
/// queue (`role(is_producer, items)`, called for the consumers first), `n`
/// items split evenly, waits for their warm-up (`warm`, see
/// [`warmup_items`]) and times the run.
fn run_procq_crew(
    ctx: &Ctx,
    f: Flow,
    n: u64,
    mut role: impl FnMut(bool, u64) -> Role,
) -> Result<f64> {
    let mut crew = Crew::new(&ctx.exe);
    let puts = split(n, f.producers);
    let mut cons = Vec::new();
    for (i, items) in split(n, f.consumers).into_iter().enumerate() {
        cons.push(crew.spawn(&format!("consumer {i}"), &role(false, items))?.0);
    }
    let mut prods = Vec::new();
    for (i, &items) in puts.iter().enumerate() {
        prods.push(crew.spawn(&format!("producer {i}"), &role(true, items))?.0);
    }
    crew.expect_all("warm", ctx.deadline())?;
    let start = crew.go()?;
    collect(crew, ctx, start, &cons, &prods, expected_sum(f.item, &puts))
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

/// ipmpsc: the consumer creates the ring (in `/dev/shm`, as procq's
/// segments are), `f.producers` producers open it.
fn run_ipmpsc(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    use crate::worker::Bincode;
    let path = ShmFile::new(ctx);
    let enc = if f.system == System::IpmpscBytes {
        Bincode::Bytes
    } else {
        Bincode::Generic
    };
    let mut crew = Crew::new(&ctx.exe);
    let (c, _) = crew.spawn(
        "ipmpsc consumer",
        &Role::IpmpscConsumer {
            path: path.as_string(),
            item: f.item,
            items: n,
            bound: f.maxsize,
            enc,
        },
    )?;
    let puts = split(n, f.producers);
    let mut prods = Vec::new();
    for (i, &items) in puts.iter().enumerate() {
        let role = Role::IpmpscProducer {
            path: path.as_string(),
            item: f.item,
            items,
            enc,
        };
        prods.push(crew.spawn(&format!("ipmpsc producer {i}"), &role)?.0);
    }
    let start = crew.go()?;
    collect(crew, ctx, start, &[c], &prods, expected_sum(f.item, &puts))
}

/// iceoryx2 publish-subscribe, one publisher and one busy-polling
/// subscriber. The publisher creates the service and its port first, the
/// subscriber's port connects to it as it is made, and the publisher
/// connects to the subscriber at `connect`: both are connected before the
/// first sample, so nothing is dropped (see `worker::iceoryx2` for why not
/// the other way round). Then the warm-up, as procq's (see
/// [`warmup_items`]), and at `go` the timed run.
fn run_iceoryx2(ctx: &Ctx, f: Flow, n: u64) -> Result<f64> {
    let name = ctx.fresh();
    // The same untimed warm-up as procq's rows, zero-copy ones included.
    let warmup = warmup_items(ctx, f);
    let mut crew = Crew::new(&ctx.exe);
    let (p, _) = crew.spawn(
        "iceoryx2 publisher",
        &Role::Iceoryx2Producer {
            name: name.clone(),
            item: f.item,
            warmup,
            items: n,
            bound: f.maxsize,
        },
    )?;
    let (c, _) = crew.spawn(
        "iceoryx2 subscriber",
        &Role::Iceoryx2Consumer {
            name,
            item: f.item,
            warmup,
            items: n,
            bound: f.maxsize,
            zero_copy: f.system == System::Iceoryx2ZeroCopy,
        },
    )?;
    crew.tell("connect")?;
    crew.expect_all("warm", ctx.deadline())?;
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
