//! The worker side of iceoryx2 (feature `iceoryx2`), measured the way
//! `design-notes.md` ("Side by side with the peers") describes:
//!
//! * publish-subscribe with a bounded subscriber buffer and no overflow
//!   (the publisher waits rather than drop), the subscriber created first;
//! * the subscriber busy-polls (iceoryx2 has no blocking receive; its
//!   event service would add a second IPC hop), so it burns a core while
//!   it waits, which on 2 cores the publisher feels too;
//! * "copy" copies each sample out into an owned `Vec<u8>`; "zero-copy"
//!   reads it in place (length, first and last byte);
//! * the publisher writes each sample from one reused buffer, and stays
//!   until the subscriber has everything (its samples live in its data
//!   segment).

use std::time::Duration;

use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;

use super::protocol::{
    check_in_place, expect_echo, linger, monotonic_ns, ping_pong, process_cpu_ns, say,
    say_ponger_done, wait_go, wait_word, Result,
};
use crate::item::Item;

/// An iceoryx2 node whose files carry the running suite's own prefix
/// ([`iceoryx2_prefix`] of the parent), so that its leftovers can be told
/// from other users' (and other runs') and removed.
fn node() -> Result<Node<ipc::Service>> {
    // `IOX2_LOG_LEVEL=debug` shows why a connection failed.
    set_log_level_from_env_or_default();
    let mut config = Config::default();
    let prefix = iceoryx2_prefix(std::os::unix::process::parent_id());
    config.global.prefix = FileName::new(prefix.as_bytes())?;
    Ok(NodeBuilder::new()
        .config(&config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()?)
}

/// File-name prefix of every iceoryx2 resource the workers of the suite
/// running as process `suite_pid` create.
pub(crate) fn iceoryx2_prefix(suite_pid: u32) -> String {
    format!("procqbench{suite_pid}_")
}

fn service_name(name: &str) -> Result<ServiceName> {
    Ok(ServiceName::new(&format!("procq-bench/{name}"))?)
}

/// Longest a busy-polling subscriber waits for one sample before it
/// reports the run as failed (a sample the publisher never delivered)
/// instead of spinning until the parent's time limit.
const STALL: Duration = Duration::from_secs(10);

/// Spins until `poll` returns something: iceoryx2's subscriber has no
/// blocking receive.
fn busy<T>(mut poll: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let mut since: Option<std::time::Instant> = None;
    let mut spins = 0u32;
    loop {
        if let Some(v) = poll()? {
            return Ok(v);
        }
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) {
            let t = since.get_or_insert_with(std::time::Instant::now);
            if t.elapsed() > STALL {
                return Err(format!("no sample for {} s", STALL.as_secs()).into());
            }
        }
    }
}

/// Fails the run if sample `i` reached no subscriber (it is lost).
fn delivered(recipients: usize, i: u64) -> Result<()> {
    if recipients == 0 {
        return Err(format!("sample {i} reached no subscriber").into());
    }
    Ok(())
}

/// Connects a new publisher to the subscribers that exist already, so
/// that its first sample reaches them (iceoryx2 connects lazily, and a
/// sample sent before the connection goes to no one).
fn connect<P: UpdateConnections>(publisher: &P) -> Result<()> {
    publisher
        .update_connections()
        .map_err(|e| format!("connecting the publisher: {e}"))?;
    Ok(())
}

/// The service of a throughput run, as the publisher creates it: a
/// subscriber buffer of `bound` samples, no overflow (the publisher waits
/// instead of dropping), no history, one publisher, one subscriber.
macro_rules! pubsub_service {
    ($node:expr, $name:expr, $payload:ty, $bound:expr) => {
        $node
            .service_builder(&service_name($name)?)
            .publish_subscribe::<$payload>()
            .subscriber_max_buffer_size($bound)
            .history_size(0)
            .enable_safe_overflow(false)
            .max_publishers(1)
            .max_subscribers(1)
    };
}

/// Runs the warm-up and the timed part of a worker whose ports exist: at
/// the parent's `connect`, `connect` (the publisher connects to the
/// subscriber), then `step` for each of `warmup` untimed items (see
/// `flows::warmup_items`, the rule procq's rows follow), `warm`, and at `go`
/// `step` for each of `items`; returns the sum of what `step` returned.
fn warm_then_run(
    (warmup, items): (u64, u64),
    connect: impl FnOnce() -> Result<()>,
    mut step: impl FnMut(u64) -> Result<u64>,
) -> Result<u64> {
    say("ready")?;
    wait_word("connect")?;
    connect()?;
    for i in 0..warmup {
        step(i).map_err(|e| format!("{e} after {i} of {warmup} warm-up items"))?;
    }
    say("warm")?;
    wait_go()?;
    let mut sum = 0u64;
    for i in 0..items {
        let got = step(i).map_err(|e| format!("{e} after {i} of {items}"))?;
        sum = sum.wrapping_add(got);
    }
    Ok(sum)
}

/// Subscriber: opens the publisher's service (the publisher exists, whole,
/// with its data segment: the new subscriber port connects to it as it is
/// made) and receives `warmup`, then `items`, copying each out (`zero_copy`
/// false) or reading it in place.
pub(crate) fn iceoryx2_consume(
    name: &str,
    item: Item,
    counts: (u64, u64),
    bound: usize,
    zero_copy: bool,
) -> Result<()> {
    let node = node()?;
    let sum = match item {
        Item::U64 => {
            let service = pubsub_service!(node, name, u64, bound).open()?;
            let sub = service.subscriber_builder().buffer_size(bound).create()?;
            warm_then_run(counts, || Ok(()), |_| Ok(*busy(|| Ok(sub.receive()?))?))?
        }
        Item::Bytes(len) => {
            let service = pubsub_service!(node, name, [u8], bound).open()?;
            let sub = service.subscriber_builder().buffer_size(bound).create()?;
            warm_then_run(
                counts,
                || Ok(()),
                |_| {
                    let sample = busy(|| Ok(sub.receive()?))?;
                    let bytes = sample.payload();
                    Ok(if zero_copy {
                        // In place: what a reader that needs no copy pays.
                        check_in_place(bytes, len)
                    } else {
                        std::hint::black_box(bytes.to_vec()).len() as u64
                    })
                },
            )?
        }
    };
    say(&format!("done {} {sum}", monotonic_ns()))
}

/// Publisher: creates the service and its publisher port (and so its data
/// segment) before the subscriber exists; at `connect` connects to the
/// subscriber, made meanwhile, and sends `warmup` items, then at `go`
/// `items`, waiting (never dropping) while the subscriber's buffer is full.
///
/// This order matters: when the subscriber came first and learnt of the
/// publisher only in its first `receive`, it sometimes never connected to
/// it (iceoryx2 0.10 then warns "Unable to establish connection to new
/// sender", or the publisher finds "no connected receiver and the buffer
/// is full"), and the run failed after 0 samples; small items, whose
/// runs are the shortest, hit it most.
pub(crate) fn iceoryx2_produce(
    name: &str,
    item: Item,
    counts: (u64, u64),
    bound: usize,
) -> Result<()> {
    let node = node()?;
    match item {
        Item::U64 => {
            let service = pubsub_service!(node, name, u64, bound).create()?;
            let publisher = service
                .publisher_builder()
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()?;
            warm_then_run(
                counts,
                || connect(&publisher),
                |i| delivered(publisher.send_copy(i)?, i).map(|()| 0),
            )?;
        }
        Item::Bytes(len) => {
            let service = pubsub_service!(node, name, [u8], bound).create()?;
            let publisher = service
                .publisher_builder()
                .initial_max_slice_len(len)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()?;
            let payload = vec![item.fill_byte(); len];
            warm_then_run(
                counts,
                || connect(&publisher),
                |i| {
                    let sample = publisher.loan_slice_uninit(len)?;
                    delivered(sample.write_from_slice(&payload).send()?, i).map(|()| 0)
                },
            )?;
        }
    }
    say(&format!("done {}", monotonic_ns()))?;
    // Samples still in the subscriber's buffer live in this publisher's
    // data segment: stay until the subscriber has them all.
    linger();
    Ok(())
}

/// Ping-pong over two iceoryx2 services (`u64` samples), both sides
/// busy-polling. The ponger creates both services.
pub(crate) fn iceoryx2_ponger(ping: &str, pong: &str, count: u64) -> Result<()> {
    let node = node()?;
    let ping = node
        .service_builder(&service_name(ping)?)
        .publish_subscribe::<u64>()
        .history_size(0)
        .subscriber_max_buffer_size(4)
        .create()?;
    let pong = node
        .service_builder(&service_name(pong)?)
        .publish_subscribe::<u64>()
        .history_size(0)
        .subscriber_max_buffer_size(4)
        .create()?;
    let sub = ping.subscriber_builder().create()?;
    let publisher = pong
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    say("ready")?;
    wait_go()?;
    let cpu = process_cpu_ns();
    connect(&publisher)?;
    // The pinger subscribes to `pong` before it says ready, and this
    // process starts only after that: no answer can go unheard.
    for _ in 0..count {
        let v = *busy(|| Ok(sub.receive()?))?;
        publisher.send_copy(v)?;
    }
    say_ponger_done(cpu)?;
    linger();
    Ok(())
}

pub(crate) fn iceoryx2_pinger(ping: &str, pong: &str, warmup: u64, round_trips: u64) -> Result<()> {
    let node = node()?;
    let ping = node
        .service_builder(&service_name(ping)?)
        .publish_subscribe::<u64>()
        .open()?;
    let pong = node
        .service_builder(&service_name(pong)?)
        .publish_subscribe::<u64>()
        .open()?;
    let sub = pong.subscriber_builder().create()?;
    let publisher = ping
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()?;
    connect(&publisher)?;
    say("ready")?;
    wait_go()?;
    ping_pong(warmup, round_trips, |i| {
        publisher.send_copy(i)?;
        expect_echo(i, *busy(|| Ok(sub.receive()?))?)
    })
}
