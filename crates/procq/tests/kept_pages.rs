//! A busy ring keeps its pages when it empties, and gives them back only
//! once the queue has been idle (see "Keeping pages" in
//! `backend/shm/locked.rs`).
//!
//! The kept pages are claimed in a header word that a growth trusts to
//! skip its `fallocate`, so the word must never claim a page that is not
//! reserved: on a full `/dev/shm` a write into a hole raises `SIGBUS`
//! where a reservation gives a clean error. These tests kill a process
//! between each pair of the protocol's stores (`kill_at_keep_step`) and
//! check what the queue holds, how much memory the file holds, and that
//! the memory still goes back; and, in a private mount namespace with a
//! small `/dev/shm` (needs root; SKIP without it, a failure under CI), that
//! a full `/dev/shm` gives an error on growth before and after a release,
//! never a `SIGBUS`.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use procq::__fuzzing::{hold_growth_for, kill_at_keep_step, KeepStep};
use procq::{Builder, Error, RawQueue};

const LIMIT: Duration = Duration::from_secs(60);
const MIB: usize = 1 << 20;
/// Longer than the 20 ms an empty ring waits before it gives its memory
/// back.
const IDLE: Duration = Duration::from_millis(60);
/// What a queue's file holds at rest: the header and the initial ring
/// (256 KiB each), with room to spare.
const AT_REST: u64 = 1 << 20;

/// Item `i`: 1 MiB of the byte `i`.
fn item(i: usize) -> Vec<u8> {
    vec![i as u8; MIB]
}

/// Bytes the queue's file holds in memory.
fn allocated(name: &str) -> u64 {
    std::fs::metadata(format!("/dev/shm/procq-{name}"))
        .unwrap()
        .blocks()
        * 512
}

fn put_items(q: &RawQueue, range: std::ops::Range<usize>) {
    for i in range {
        q.put(&item(i)).unwrap();
    }
}

fn get_items(q: &RawQueue, range: std::ops::Range<usize>) {
    for i in range {
        let got = q.get_timeout(LIMIT).unwrap();
        assert!(got == item(i), "item {i} out of order or torn");
    }
}

/// Waits until the queue has been idle long enough and asks for its
/// statistics, which gives an idle ring's memory back.
fn release(name: &str) {
    std::thread::sleep(IDLE);
    procq::stats(name).unwrap();
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    let step = |s: &str| match s {
        "reserved" => KeepStep::Reserved,
        "claimed" => KeepStep::Claimed,
        "shrunk" => KeepStep::Shrunk,
        "unclaimed" => KeepStep::Unclaimed,
        other => panic!("unknown step {other}"),
    };
    match role.as_str() {
        // Puts items args[1]..args[2].
        "put" => {
            let q = RawQueue::open(&args[0]).unwrap();
            put_items(&q, args[1].parse().unwrap()..args[2].parse().unwrap());
            return;
        }
        // Puts items args[1]..args[2], letting consumers free space as
        // long as it takes before it grows a ring of 8 MiB.
        "put-patiently" => {
            let q = RawQueue::open(&args[0]).unwrap();
            hold_growth_for(LIMIT);
            put_items(&q, args[1].parse().unwrap()..args[2].parse().unwrap());
            return;
        }
        // Puts one more item, which needs the ring to grow.
        "grow" => {
            let q = RawQueue::open(&args[0]).unwrap();
            kill_at_keep_step(Some(step(&args[1])));
            let _ = q.put(&item(99));
        }
        // Gets every item, the last of which empties the ring.
        "drain" => {
            let q = RawQueue::open(&args[0]).unwrap();
            kill_at_keep_step(Some(step(&args[1])));
            while q.get_timeout(LIMIT).is_ok() {}
        }
        // Asks for the statistics of an idle queue, which gives its
        // memory back.
        "stats" => {
            kill_at_keep_step(Some(step(&args[1])));
            let _ = procq::stats(&args[0]);
        }
        "small-shm" => {
            small_shm(&args[0]);
            return;
        }
        other => panic!("unknown role {other}"),
    }
    panic!("{role} should have been killed");
}

/// Removes the queue when dropped, also when an assertion failed.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = procq::remove(&self.0);
    }
}

fn new_queue(tag: &str) -> (RawQueue, Cleanup) {
    let name = common::unique(tag);
    let q = Builder::new().name(&name).build_raw().unwrap();
    (q, Cleanup(name))
}

/// Runs `role` in a child and waits for it to die of SIGKILL.
fn killed(role: &str, args: &[&str]) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = common::Reaped(common::spawn(role, args));
    let status = common::wait(&mut child.0, LIMIT);
    assert_eq!(status.signal(), Some(9), "{role} {args:?}: {status}");
}

#[test]
fn an_emptied_ring_keeps_its_pages_until_the_queue_is_idle() {
    let _w = common::watchdog("kept pages", LIMIT);
    let (q, rm) = new_queue("kept");
    let name = rm.0.clone();
    // 24 items of 1 MiB, put by another process: the ring grows to 32 MiB.
    let mut child = common::Reaped(common::spawn("put", &[&name, "0", "24"]));
    common::wait_ok(&mut child.0, LIMIT);
    get_items(&q, 0..24);
    // Empty, and nobody asked for the memory back: it is kept.
    let kept = allocated(&name);
    assert!(kept >= 32 << 20, "{kept} bytes after the drain");
    // The same again: the ring regrows into the pages it kept.
    let mut child = common::Reaped(common::spawn("put", &[&name, "24", "48"]));
    common::wait_ok(&mut child.0, LIMIT);
    get_items(&q, 24..48);
    assert_eq!(allocated(&name), kept, "regrowth took new pages");
    // Idle: the memory goes back, and the ring works as before.
    release(&name);
    assert!(allocated(&name) <= AT_REST, "{}", allocated(&name));
    assert_eq!(q.stats().unwrap().capacity_bytes, 256 << 10);
    put_items(&q, 48..60);
    get_items(&q, 48..60);
}

/// The ring's modulus, in bytes.
fn capacity(q: &RawQueue) -> u64 {
    q.stats().unwrap().capacity_bytes
}

#[test]
fn a_burst_of_large_items_waits_for_the_consumer_instead_of_growing_an_8_mib_ring() {
    let _w = common::watchdog("kept pages: growth held back", LIMIT);
    let (q, rm) = new_queue("kept-held");
    // 7 items of 1 MiB fill an 8 MiB ring (an 8th needs 16 MiB).
    put_items(&q, 0..7);
    assert_eq!(capacity(&q), 8 << 20);
    // Another process puts 55 more while this one gets them all: its puts
    // wait for the space this one frees instead of doubling the ring.
    let mut child = common::Reaped(common::spawn("put-patiently", &[&rm.0, "7", "62"]));
    // Only once its first put found the ring full (or it is done: a put
    // that grows the ring never waits).
    let deadline = std::time::Instant::now() + LIMIT;
    while q.stats().unwrap().blocked_puts == 0 && child.0.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the child never put");
        std::thread::sleep(Duration::from_millis(1));
    }
    get_items(&q, 0..62);
    common::wait_ok(&mut child.0, LIMIT);
    // The file never held more than the header and the 8 MiB ring.
    let held = allocated(&rm.0);
    assert!(held <= (8 << 20) + AT_REST, "{held} bytes: the ring grew");
}

#[test]
fn puts_into_a_queue_nobody_reads_still_grow_the_ring_past_8_mib() {
    let _w = common::watchdog("kept pages: growth held back", LIMIT);
    let (q, _rm) = new_queue("kept-unread");
    // A blocking put holds the growth of a ring of 8 MiB or more back
    // only while consumers free space (see `HOLD_GROWTH_FROM`); nobody
    // does here.
    put_items(&q, 0..40);
    assert_eq!(capacity(&q), 64 << 20);
    // `put_nowait` never waits for room.
    for i in 40..70 {
        q.put_nowait(&item(i)).unwrap();
    }
    assert_eq!(capacity(&q), 128 << 20);
    get_items(&q, 0..70);
}

#[test]
fn a_growth_killed_before_it_claims_its_pages_loses_nothing() {
    let _w = common::watchdog("kept pages: reserved", LIMIT);
    let (q, rm) = new_queue("kept-reserved");
    put_items(&q, 0..3);
    // The fourth item needs an 8 MiB ring: killed once the new half is
    // reserved, before it is claimed or the growth committed.
    killed("grow", &[&rm.0, "reserved"]);
    get_items(&q, 0..3);
    assert!(q.get_nowait().is_err(), "the killed put is invisible");
    release(&rm.0);
    assert!(allocated(&rm.0) <= AT_REST, "{}", allocated(&rm.0));
    put_items(&q, 3..15);
    get_items(&q, 3..15);
}

#[test]
fn a_get_killed_after_claiming_the_pages_of_the_ring_it_empties_leaves_the_item() {
    let _w = common::watchdog("kept pages: claimed", LIMIT);
    let (q, rm) = new_queue("kept-claimed");
    put_items(&q, 0..12);
    // The last get empties a 16 MiB ring: killed after claiming its pages,
    // before the smaller ring and the pop commit.
    killed("drain", &[&rm.0, "claimed"]);
    get_items(&q, 11..12);
    assert!(q.get_nowait().is_err());
    release(&rm.0);
    assert!(allocated(&rm.0) <= AT_REST, "{}", allocated(&rm.0));
    put_items(&q, 12..24);
    get_items(&q, 12..24);
}

#[test]
fn a_release_killed_after_its_shrink_still_claims_the_pages_and_the_next_one_frees_them() {
    let _w = common::watchdog("kept pages: shrunk", LIMIT);
    let (q, rm) = new_queue("kept-shrunk");
    put_items(&q, 0..12);
    get_items(&q, 0..12);
    std::thread::sleep(IDLE);
    killed("stats", &[&rm.0, "shrunk"]);
    assert!(allocated(&rm.0) >= 16 << 20, "{}", allocated(&rm.0));
    release(&rm.0);
    assert!(allocated(&rm.0) <= AT_REST, "{}", allocated(&rm.0));
    put_items(&q, 12..24);
    get_items(&q, 12..24);
}

#[test]
fn pages_a_release_killed_before_its_punch_left_unclaimed_go_back_at_the_next_release() {
    let _w = common::watchdog("kept pages: unclaimed", LIMIT);
    let (q, rm) = new_queue("kept-unclaimed");
    put_items(&q, 0..12);
    get_items(&q, 0..12);
    std::thread::sleep(IDLE);
    killed("stats", &[&rm.0, "unclaimed"]);
    // Unclaimed and still there: nothing to release until the ring grows.
    assert!(allocated(&rm.0) >= 16 << 20, "{}", allocated(&rm.0));
    put_items(&q, 12..24);
    get_items(&q, 12..24);
    release(&rm.0);
    assert!(allocated(&rm.0) <= AT_REST, "{}", allocated(&rm.0));
}

/// The `small-shm` role, in a mount namespace whose `/dev/shm` holds 48 MiB:
/// fills it up around a queue and checks every growth.
fn small_shm(tag: &str) {
    let name = format!("{tag}-small");
    let q = Builder::new()
        .name(&name)
        .max_bytes(64 << 20)
        .build_raw()
        .unwrap();
    let _rm = Cleanup(name.clone());
    let full = |r: procq::Result<()>| match r {
        Err(e @ Error::Io { .. }) => {
            assert!(e.to_string().contains("full"), "{e}");
        }
        other => panic!("growth on a full /dev/shm gave {other:?}"),
    };
    put_items(&q, 0..12);
    get_items(&q, 0..12);
    // A 16 MiB ring emptied: its pages are kept. Take every other page.
    let filler = Filler::fill();
    // Growth into the kept pages needs no reservation: it works.
    put_items(&q, 12..24);
    get_items(&q, 12..24);
    // Growth beyond them (a 16 MiB ring holds at most 15 items) fails
    // cleanly.
    let mut n = 24;
    let err = loop {
        match q.put_timeout(&item(n), Duration::from_millis(10)) {
            Ok(()) => n += 1,
            Err(e) => break Err(e),
        }
        assert!(
            n < 40,
            "the ring grew past its kept pages on a full /dev/shm"
        );
    };
    full(err);
    get_items(&q, 24..n);
    // Released, the pages are free again: take them too.
    release(&name);
    assert!(allocated(&name) <= AT_REST, "{}", allocated(&name));
    let more = Filler::fill();
    // Nothing claims them any more: growth reserves, and fails cleanly.
    full(q.put_timeout(&item(0), Duration::from_millis(10)));
    drop((filler, more));
    put_items(&q, 40..52);
    get_items(&q, 40..52);
}

/// A file that takes every free page of `/dev/shm`.
struct Filler(std::path::PathBuf);

impl Filler {
    fn fill() -> Filler {
        use std::os::fd::AsRawFd;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::path::PathBuf::from(format!("/dev/shm/filler-{n}"));
        let f = std::fs::File::create(&path).unwrap();
        let mut len = 0i64;
        // SAFETY: fallocate on a descriptor we own.
        while unsafe { libc::fallocate(f.as_raw_fd(), 0, len, 4096) } == 0 {
            len += 4096;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        Filler(path)
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `small-shm` role in a new mount namespace with a 48 MiB `/dev/shm`.
fn spawn_small_shm(tag: &str) -> Child {
    let mut unshare = Command::new("unshare");
    unshare
        .args(["-m", "--kill-child=SIGKILL", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=48m none /dev/shm && exec "$0" "$@""#)
        .arg(std::env::current_exe().unwrap());
    common::as_role(&mut unshare, "small-shm", &[tag])
        .spawn()
        .expect("spawn unshare")
}

#[test]
fn a_full_dev_shm_gives_an_error_on_growth_with_kept_pages_and_after_their_release() {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=1m none /dev/shm"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        let msg = "SKIP: `unshare -m` is missing or not permitted (needs root); \
                   the full-/dev/shm test did not run";
        assert!(std::env::var_os("CI").is_none(), "{msg} (under CI it must)");
        eprintln!("\n*** {msg} ***\n");
        return;
    }
    let mut child = common::Reaped(spawn_small_shm(&common::unique("full")));
    let status = common::wait(&mut child.0, LIMIT);
    assert!(status.success(), "small-shm: {status}");
}
