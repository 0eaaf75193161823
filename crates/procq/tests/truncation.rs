//! A segment's file truncated by another process of the same user (which
//! Linux cannot prevent for a named tmpfs file) destroys that queue, but
//! must not kill the processes using it: a consumer blocked in `get` and
//! one in the middle of copying an item both get an `InvalidQueue` error
//! and live on.

mod common;

use std::time::{Duration, Instant};

use procq::{Builder, Error};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(60);

fn truncate(name: &str) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/procq-{name}"))
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// An item whose decoding has another process truncate the queue's file
/// half-way: after the first field, before the bulk of the bytes.
#[derive(Serialize, Debug)]
struct Tripwire {
    queue: String,
    payload: Vec<u8>,
}

impl<'de> Deserialize<'de> for Tripwire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tripwire;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a tripwire")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tripwire, A::Error> {
                let queue: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                // Another process cuts the file while we are reading it.
                let mut truncator = common::spawn("truncate", &[&queue]);
                common::wait_ok(&mut truncator, LIMIT);
                let payload: Vec<u8> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Ok(Tripwire { queue, payload })
            }
        }
        d.deserialize_struct("Tripwire", &["queue", "payload"], V)
    }
}

fn expect_truncated<T: std::fmt::Debug>(r: procq::Result<T>) {
    match r {
        Err(e @ Error::InvalidQueue { .. }) => {
            assert!(e.to_string().contains("truncated"), "{e}");
        }
        other => panic!("expected InvalidQueue (truncated), got {other:?}"),
    }
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        "truncate" => truncate(&args[0]),
        // Blocks in get() without a timeout on an empty queue.
        "blocked-get" => {
            let q = Builder::new().name(&args[0]).build::<u64>().unwrap();
            expect_truncated(q.get());
            // Still alive, and every later call fails the same way.
            expect_truncated(q.put(&1));
            expect_truncated(q.get_nowait());
        }
        // Truncation in the middle of copying an item out.
        "reader" => {
            let q = Builder::new().name(&args[0]).build::<Tripwire>().unwrap();
            q.put(&Tripwire {
                queue: args[0].clone(),
                payload: vec![0xAB; 4 << 20],
            })
            .unwrap();
            expect_truncated(q.get());
            expect_truncated(q.get_nowait());
        }
        // Truncation while putting: the item is refused, not lost silently.
        "writer" => {
            let q = Builder::new().name(&args[0]).build::<Vec<u8>>().unwrap();
            q.put(&vec![1; 1000]).unwrap();
            truncate(&args[0]);
            expect_truncated(q.put(&vec![2; 1 << 20]));
        }
        other => panic!("unknown role {other}"),
    }
}

fn cleanup(name: &str) {
    // A truncated segment is no queue any more; remove() still removes it.
    let _ = procq::remove(name);
    assert!(!common::segment_exists(name));
}

#[test]
fn truncating_under_a_blocked_consumer_is_an_error_not_a_crash_or_a_hang() {
    let name = common::unique("trunc-blocked");
    let mut child = common::spawn("blocked-get", &[&name]);
    let start = Instant::now();
    // Wait until the consumer is blocked in get().
    while procq::stats(&name).map_or(true, |s| s.blocked_gets == 0) {
        assert!(start.elapsed() < LIMIT, "consumer never blocked");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200)); // asleep on the futex
    truncate(&name);
    let status = common::wait(&mut child, LIMIT);
    assert!(status.success(), "consumer failed or died: {status}");
    cleanup(&name);
}

#[test]
fn truncating_under_an_active_reader_is_an_error_not_a_crash() {
    let name = common::unique("trunc-reader");
    let mut child = common::spawn("reader", &[&name]);
    let status = common::wait(&mut child, LIMIT);
    assert!(status.success(), "reader failed or died: {status}");
    cleanup(&name);
}

#[test]
fn truncating_before_a_put_is_an_error_not_a_crash() {
    let name = common::unique("trunc-writer");
    let mut child = common::spawn("writer", &[&name]);
    let status = common::wait(&mut child, LIMIT);
    assert!(status.success(), "writer failed or died: {status}");
    cleanup(&name);
}
