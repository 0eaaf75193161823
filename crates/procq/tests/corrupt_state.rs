//! Committed state written by a hostile (or broken) process of the same
//! user while another process is blocked on the queue: ring positions near
//! `u64::MAX` must give that process a clear error promptly — not an overflow panic, not a loop of 2^52 rounds under
//! the lock, not a `put` that waits forever for room that can never come.

mod common;

use std::time::Duration;

use procq::{Builder, Error, Queue};

const LIMIT: Duration = Duration::from_secs(60);

/// State words (see `procq::__fuzzing::poke_state`).
const HEAD: usize = 0;
const TAIL: usize = 1;
const COUNT: usize = 2;

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        // Blocks in get() on the empty queue; the test corrupts the state
        // meanwhile. Every call from then on must fail with InvalidQueue,
        // promptly.
        "user" => {
            let q = Queue::<Vec<u8>>::open(&args[0]).unwrap();
            let expect_corrupt = |r: procq::Result<()>| match r {
                Err(e @ Error::InvalidQueue { .. }) => {
                    assert!(e.to_string().contains("corrupted"), "{e}")
                }
                other => panic!("expected InvalidQueue, got {other:?}"),
            };
            expect_corrupt(q.get_timeout(LIMIT).map(drop));
            expect_corrupt(q.put(&vec![5; 5000])); // needs the ring to grow
            expect_corrupt(q.put(&vec![]));
            expect_corrupt(q.get_nowait().map(drop));
            expect_corrupt(procq::stats(&args[0]).map(drop));
        }
        other => panic!("unknown role {other}"),
    }
}

fn corrupt_and_use(tag: &str, words: &[(usize, u64)]) {
    let name = common::unique(tag);
    let q = Builder::new()
        .name(&name)
        .capacity_bytes(4096)
        .max_bytes(1 << 16)
        .build::<Vec<u8>>()
        .unwrap();
    let mut child = common::spawn("user", &[&name]);
    let start = std::time::Instant::now();
    while procq::stats(&name).map_or(true, |s| s.blocked_gets == 0) {
        assert!(
            start.elapsed() < LIMIT,
            "{tag}: the other process never blocked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for &(word, value) in words {
        procq::__fuzzing::poke_state(&name, word, value).unwrap();
    }
    let status = common::wait(&mut child, LIMIT);
    assert!(
        status.success(),
        "{tag}: the other process failed: {status}"
    );
    drop(q);
    // The corrupt queue cannot clean up after itself; remove() can.
    procq::remove(&name).unwrap();
}

#[test]
fn a_record_just_below_the_integer_limit_is_an_error() {
    // One record at head = u64::MAX - 4111 (aligned), tail = head + 32:
    // consistent except for the headroom, so it used to pass validation
    // and overflow in Ring::grow.
    let head = (u64::MAX - 4111) & !15;
    corrupt_and_use("near-max", &[(HEAD, head), (TAIL, head + 32), (COUNT, 1)]);
}

#[test]
fn an_empty_ring_at_the_integer_limit_is_an_error() {
    // An empty ring at u64::MAX - 15: the next push's padding overflows;
    // a put used to find "no room", grow to the maximum and then wait for
    // room forever.
    let at = u64::MAX - 15;
    corrupt_and_use("empty-max", &[(HEAD, at), (TAIL, at), (COUNT, 0)]);
}
