//! Crash torture: producers and consumers are SIGKILLed at random moments —
//! inside `put`, inside `get`, holding the lock, while waiting — and the
//! queue must stay usable, with nothing torn, duplicated or reordered, and
//! no item lost except the one a killed consumer had already taken.
//!
//! `PROCQ_TORTURE_KILLS=N` sets how many kills to make (default 400, a few
//! seconds on 2 cores); the long mode in the README uses thousands.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Child;
use std::time::{Duration, Instant};

use procq::{Builder, Error, JoinableQueue, Queue, RawQueue};
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(120);
/// How long one torture may run before it fails the binary (each takes
/// seconds to a minute; the long mode of the README a few minutes).
const WATCHDOG: Duration = Duration::from_secs(20 * 60);

/// One work item: who made it, its sequence number, and a payload whose
/// checksum proves it was not torn.
#[derive(Serialize, Deserialize, Debug)]
struct Item {
    producer: u32,
    seq: u32,
    payload: Vec<u8>,
    checksum: u64,
}

fn checksum(producer: u32, seq: u32, payload: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ (u64::from(producer) << 32 | u64::from(seq));
    for &b in payload {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn item(producer: u32, seq: u32) -> Item {
    // Sizes from a few bytes to ~24 KiB exercise padding, wrap-around and
    // growth, and make kills inside the copy (under the lock) likely.
    sized(
        producer,
        seq,
        (seq.wrapping_mul(2_654_435_761) >> 18) as usize % 24_000,
    )
}

/// A large item (16 KiB to ~400 KiB): copied outside the lock, between a
/// reservation and its publication, where a kill now lands most often.
fn big_item(producer: u32, seq: u32) -> Item {
    let len = 16 * 1024 + (seq.wrapping_mul(2_654_435_761) >> 12) as usize % (384 * 1024);
    sized(producer, seq, len)
}

fn sized(producer: u32, seq: u32, len: usize) -> Item {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i as u32 ^ seq ^ producer) as u8)
        .collect();
    let checksum = checksum(producer, seq, &payload);
    Item {
        producer,
        seq,
        payload,
        checksum,
    }
}

/// Message from a consumer: (producer, seq), or `None` at the end.
type Report = Option<(u32, u32)>;

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        "producer" => {
            let q = JoinableQueue::<Option<Item>>::open(&args[0]).unwrap();
            let id: u32 = args[1].parse().unwrap();
            let n: u32 = args[2].parse().unwrap();
            for seq in 0..n {
                q.put(&Some(item(id, seq))).unwrap();
            }
        }
        // Writes each large item in place (`put_with`), one byte at a time,
        // so that most kills land between the reservation and the publish.
        "big-producer" => {
            let q = RawQueue::open(&args[0]).unwrap();
            let id: u32 = args[1].parse().unwrap();
            let n: u32 = args[2].parse().unwrap();
            for seq in 0..n {
                let bytes = postcard::to_allocvec(&Some(big_item(id, seq))).unwrap();
                q.put_with(bytes.len(), None, |buf| {
                    for (d, s) in buf.iter_mut().zip(&bytes) {
                        *d = *s;
                    }
                })
                .unwrap();
            }
        }
        "consumer" => {
            let q = JoinableQueue::<Option<Item>>::open(&args[0]).unwrap();
            let reports = Queue::<Report>::open(&args[1]).unwrap();
            loop {
                let Some(it) = q.get_timeout(LIMIT).unwrap() else {
                    q.task_done().unwrap();
                    break;
                };
                assert_eq!(
                    it.checksum,
                    checksum(it.producer, it.seq, &it.payload),
                    "torn item"
                );
                reports.put(&Some((it.producer, it.seq))).unwrap();
                q.task_done().unwrap();
            }
        }
        // Takes the lock as often as it can: put, get, task_done and qsize
        // in a loop, checking every item it gets. Runs until killed.
        "hammer" => {
            // Attaching gives up (LockBusy) after a few seconds of a holder
            // that does not let go; the SIGSTOP round makes that happen.
            let q = loop {
                match JoinableQueue::<Option<Item>>::open(&args[0]) {
                    Err(Error::LockBusy { .. }) => continue,
                    other => break other.unwrap(),
                }
            };
            let id: u32 = args[1].parse().unwrap();
            for seq in 0.. {
                q.put(&Some(item(id, seq % 64))).unwrap();
                if let Some(it) = q.get_timeout(LIMIT).unwrap() {
                    assert_eq!(
                        it.checksum,
                        checksum(it.producer, it.seq, &it.payload),
                        "torn item"
                    );
                }
                q.task_done().unwrap();
                let _ = q.qsize();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

struct Round {
    q: JoinableQueue<Option<Item>>,
    reports: Queue<Report>,
    producers: Vec<Child>,
    consumers: Vec<Child>,
    next_producer: u32,
    /// Consumers killed: each may have taken one item it never reported.
    consumer_kills: usize,
    per_producer: u32,
    /// Producers of large items only ("big-producer").
    big: bool,
}

impl Round {
    fn spawn_producer(&mut self) {
        let id = self.next_producer;
        self.next_producer += 1;
        let n = self.per_producer.to_string();
        self.producers.push(common::spawn(
            if self.big { "big-producer" } else { "producer" },
            &[self.q.name(), &id.to_string(), &n],
        ));
    }

    fn spawn_consumer(&mut self) {
        self.consumers.push(common::spawn(
            "consumer",
            &[self.q.name(), self.reports.name()],
        ));
    }
}

/// A small deterministic generator (xorshift), seeded per run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn kill(child: &mut Child) {
    // SAFETY-free: std's Child::kill sends SIGKILL.
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigkill_at_random_moments_loses_and_corrupts_nothing() {
    let _dog = common::watchdog("sigkill_at_random_moments", WATCHDOG);
    let total_kills: usize = std::env::var("PROCQ_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    torture("torture", total_kills, false);
}

/// The same with large items only: most kills of producers land between
/// the reservation of a record and its publication (the copy outside the
/// lock), and of consumers while they wait for a record being written.
#[test]
fn sigkill_of_large_item_producers_mid_copy_loses_and_corrupts_nothing() {
    let _dog = common::watchdog("sigkill_of_large_item_producers_mid_copy", WATCHDOG);
    let kills = std::env::var("PROCQ_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(100, |n: usize| (n / 4).max(100));
    torture("large-item torture", kills, true);
}

fn torture(what: &str, total_kills: usize, big: bool) {
    let seed = std::env::var("PROCQ_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{what}: {total_kills} kills, seed {seed} (PROCQ_TORTURE_SEED to replay)");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut kills, mut rounds, mut delivered, mut lost, mut recoveries, mut orphans) =
        (0usize, 0usize, 0usize, 0usize, 0u64, 0u64);
    while kills < total_kills {
        rounds += 1;
        // Alternate a tightly bounded queue with a tiny initial ring (so it
        // grows, pads and shrinks) and an unbounded one.
        let maxsize = if rounds % 2 == 0 { 8 } else { 0 };
        let q = Builder::new()
            .maxsize(maxsize)
            .capacity_bytes(4096)
            .build_joinable::<Option<Item>>()
            .unwrap();
        let reports = Queue::<Report>::new(0).unwrap();
        let mut r = Round {
            q,
            reports,
            producers: Vec::new(),
            consumers: Vec::new(),
            next_producer: 0,
            consumer_kills: 0,
            per_producer: if big { 60 } else { 300 },
            big,
        };
        for _ in 0..3 {
            r.spawn_producer();
            r.spawn_consumer();
        }
        let round_kills = (total_kills - kills).min(25);
        for _ in 0..round_kills {
            std::thread::sleep(Duration::from_micros(rng.below(15_000)));
            let victim_is_consumer = rng.below(2) == 0;
            let list = if victim_is_consumer {
                &mut r.consumers
            } else {
                &mut r.producers
            };
            let i = rng.below(list.len() as u64) as usize;
            let mut child = list.swap_remove(i);
            kill(&mut child);
            kills += 1;
            if victim_is_consumer {
                r.consumer_kills += 1;
                r.spawn_consumer();
            } else {
                r.spawn_producer();
            }
        }
        // Let the surviving producers finish, then stop the consumers.
        for p in &mut r.producers {
            common::wait_ok(p, LIMIT);
        }
        for _ in 0..r.consumers.len() {
            r.q.put(&None).unwrap();
        }
        for c in &mut r.consumers {
            common::wait_ok(c, LIMIT);
        }
        // join() must return: tasks of killed consumers are written off.
        r.q.join_timeout(LIMIT).expect("join after kills");
        assert_eq!(r.q.qsize(), 0);
        assert_eq!(r.q.unfinished_tasks().unwrap(), 0);

        let mut got: HashMap<u32, BTreeSet<u32>> = HashMap::new();
        while let Ok(Some((p, s))) = r.reports.get_nowait() {
            assert!(
                got.entry(p).or_default().insert(s),
                "item {p}/{s} delivered twice"
            );
        }
        // Producers put in order, so what arrived from each is a prefix of
        // its sequence, minus items that killed consumers took.
        let mut missing = 0;
        for seqs in got.values() {
            let last = *seqs.iter().next_back().unwrap();
            missing += (last + 1) as usize - seqs.len();
            delivered += seqs.len();
        }
        assert!(
            missing <= r.consumer_kills,
            "{missing} items missing but only {} consumers were killed",
            r.consumer_kills
        );
        lost += missing;
        // The queue still works.
        r.q.put(&None).unwrap();
        assert!(r.q.get().unwrap().is_none());
        r.q.task_done().unwrap();
        let st = r.q.stats().unwrap();
        recoveries += st.recoveries;
        orphans += procq::__fuzzing::orphaned_puts(r.q.name()).unwrap();
        assert_eq!(st.items, 0);
        // Killed processes leave their slots behind; the last live user
        // reclaims them and removes the queue.
        let names = [r.q.name().to_owned(), r.reports.name().to_owned()];
        drop(r);
        for name in names {
            assert!(!common::segment_exists(&name), "queue {name} leaked");
        }
    }
    eprintln!(
        "{what}: {kills} kills in {rounds} rounds, {delivered} items delivered intact, {lost} taken by killed consumers, \
         {orphans} puts of killed producers removed unpublished, {recoveries} lock recoveries, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn seed_and_kills(default: usize) -> (Rng, usize) {
    let kills: usize = std::env::var("PROCQ_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(default, |n: usize| (n / 4).max(default));
    let seed = std::env::var("PROCQ_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("seed {seed} (PROCQ_TORTURE_SEED to replay)");
    (Rng(seed), kills)
}

/// Empties the queue checking every item, marks them done, and checks that
/// the task count and the lock are sound afterwards.
fn drain_and_check(q: &JoinableQueue<Option<Item>>) -> usize {
    let mut n = 0;
    while let Ok(it) = q.get_timeout(Duration::from_millis(10)) {
        let it = it.expect("only items were put");
        assert_eq!(
            it.checksum,
            checksum(it.producer, it.seq, &it.payload),
            "torn item"
        );
        q.task_done().unwrap();
        n += 1;
    }
    // Dead hammers' tasks are written off: join returns, nothing is left.
    q.join_timeout(LIMIT).expect("join after kills");
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
    q.put(&None).unwrap();
    assert!(q.get().unwrap().is_none());
    q.task_done().unwrap();
    n
}

/// Kills aimed at the lock: every process takes it four times per loop
/// with tiny critical sections, so SIGKILLs land while holding it, while
/// spinning for it and while asleep on it.
#[test]
fn sigkill_of_lock_holders_and_waiters_is_recovered() {
    let _dog = common::watchdog("sigkill_of_lock_holders_and_waiters", WATCHDOG);
    let (mut rng, total) = seed_and_kills(100);
    let started = Instant::now();
    let (mut kills, mut recoveries, mut drained) = (0, 0, 0);
    while kills < total {
        let q = Builder::new()
            .maxsize(16)
            .capacity_bytes(4096)
            .build_joinable::<Option<Item>>()
            .unwrap();
        let mut next = 0u32;
        let spawn = |next: &mut u32| {
            *next += 1;
            common::spawn("hammer", &[q.name(), &next.to_string()])
        };
        let mut hammers: Vec<Child> = (0..4).map(|_| spawn(&mut next)).collect();
        for _ in 0..(total - kills).min(25) {
            std::thread::sleep(Duration::from_micros(rng.below(5_000)));
            let i = rng.below(hammers.len() as u64) as usize;
            kill(&mut hammers[i]);
            hammers[i] = spawn(&mut next);
            kills += 1;
        }
        for h in &mut hammers {
            kill(h);
        }
        drained += drain_and_check(&q);
        recoveries += q.stats().unwrap().recoveries;
        let name = q.name().to_owned();
        drop(q);
        assert!(!common::segment_exists(&name), "queue {name} leaked");
    }
    eprintln!(
        "lock torture: {kills} kills, {recoveries} lock recoveries, {drained} items left intact, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Holders stopped with SIGSTOP at random moments (some killed while
/// stopped): calls with a timeout still return in time — with their result,
/// `Empty`/`Full`, or `LockBusy` — and the queue stays sound.
#[test]
fn sigstop_of_lock_holders_bounds_calls_with_timeouts() {
    let _dog = common::watchdog("sigstop_of_lock_holders", WATCHDOG);
    // A stop may cost its calls a second each: keep the long mode short.
    let (mut rng, total) = seed_and_kills(100);
    let total = total.min(300);
    let started = Instant::now();
    let q = Builder::new()
        .maxsize(16)
        .capacity_bytes(4096)
        .build_joinable::<Option<Item>>()
        .unwrap();
    let mut next = 0u32;
    let spawn = |next: &mut u32| {
        *next += 1;
        common::spawn("hammer", &[q.name(), &next.to_string()])
    };
    let mut hammers: Vec<Child> = (0..4).map(|_| spawn(&mut next)).collect();
    let (mut stops, mut busy, mut slowest) = (0, 0, Duration::ZERO);
    let timeout = Duration::from_millis(20);
    for round in 0..total {
        let i = rng.below(hammers.len() as u64) as usize;
        common::signal(&hammers[i], libc::SIGSTOP);
        stops += 1;
        // While it is stopped (perhaps inside the lock), calls with a
        // timeout must come back within max(timeout, ~1 s) + slack.
        for _ in 0..1 + rng.below(2) {
            let t = Instant::now();
            let r = match rng.below(3) {
                0 => q.get_timeout(timeout).map(|it| {
                    // task_done has no timeout: it waits for a live holder.
                    // It cannot meet the stopped hammer inside the lock: our
                    // get just took the lock, and the hammer had already
                    // stopped (`common::signal` waits for that; before it
                    // did, a hammer that took the lock on its way to
                    // stopping hung this call, and CI, for good).
                    q.task_done().unwrap();
                    drop(it)
                }),
                1 => q.put_timeout(&Some(item(0, round as u32)), timeout),
                _ => q.stats().map(drop),
            };
            let took = t.elapsed();
            slowest = slowest.max(took);
            assert!(
                took < Duration::from_secs(4),
                "a call with a {timeout:?} timeout took {took:?}: {r:?}"
            );
            match r {
                Ok(()) | Err(Error::Empty) | Err(Error::Full) => {}
                Err(Error::LockBusy { .. }) => busy += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        if rng.below(4) == 0 {
            kill(&mut hammers[i]); // SIGKILL while stopped
            hammers[i] = spawn(&mut next);
        } else {
            common::signal(&hammers[i], libc::SIGCONT);
        }
    }
    for h in &mut hammers {
        kill(h);
    }
    let drained = drain_and_check(&q);
    let recoveries = q.stats().unwrap().recoveries;
    eprintln!(
        "stop torture: {stops} stops, {busy} calls saw LockBusy, slowest call {slowest:?}, \
         {recoveries} lock recoveries, {drained} items left intact, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
