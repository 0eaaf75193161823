//! `procq demo`: what procq is for, in about ten seconds, printed as it
//! happens.
//!
//! 1. The article's programs across real processes (token counter,
//!    producer–consumer with the article's `None` sentinel), then the
//!    producer–consumer the procq way: one `shutdown()` ends two
//!    consumers' `for job in &q` loops once the queue is drained, with no
//!    sentinel per consumer.
//! 2. Crash safety: two producers stream into one bounded queue; one is
//!    killed with SIGKILL mid-stream (likely inside a `put`, maybe holding
//!    the lock). The other carries on, and the check proves that every item
//!    a put completed for arrived, once, in order: the killed producer's
//!    items form a gap-free prefix, and the queue's own counters say
//!    put = got with nothing left.
//! 3. The same items through a pipe (one write per item, as
//!    `multiprocessing.Queue` does it) and through procq, with the ratio.
//! 4. The live queue as `procq ls` and `procq stat` show it.
//! 5. What to try next.

use std::io::{BufReader, Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use procq::{Process, Queue};

use crate::failure::Failure;

/// The article's worker: take the ball, work, put it back incremented.
fn increment_worker(queue: Queue<u64>, loops: u64) {
    let pid = std::process::id();
    for _ in 0..loops {
        let value = queue.get().expect("get the ball");
        std::thread::sleep(Duration::from_millis(10));
        queue.put(&(value + 1)).expect("put the ball back");
    }
    println!("[{pid}] Processing complete");
}

fn producer(q: Queue<Option<String>>) {
    let pid = std::process::id();
    for i in 0..5 {
        let data = format!("Job-{i}");
        println!("[Prod {pid}] Generating: {data}");
        q.put(&Some(data)).expect("put a job");
        // The article sleeps 0.5 s; a tenth keeps the demo quick.
        std::thread::sleep(Duration::from_millis(50));
    }
    q.put(&None).expect("put the stop signal");
}

fn consumer(q: Queue<Option<String>>) {
    let pid = std::process::id();
    while let Some(data) = q.get().expect("get a job") {
        println!("[Cons {pid}] Processing: {data}");
    }
}

/// Part 1's producer, the procq way: the jobs, then `shutdown()` instead
/// of one `None` per consumer.
fn shutdown_producer(q: Queue<String>) {
    let pid = std::process::id();
    for i in 0..5 {
        let data = format!("Job-{i}");
        println!("[Prod {pid}] Generating: {data}");
        q.put(&data).expect("put a job");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("[Prod {pid}] shutdown(): no more jobs, for every consumer");
    q.shutdown(false).expect("shut the queue down");
}

/// Handles jobs until the queue is shut down and drained; returns how many.
fn shutdown_consumer(q: Queue<String>) -> u32 {
    let pid = std::process::id();
    let mut handled = 0;
    for data in &q {
        let data = data.expect("get a job");
        println!("[Cons {pid}] Processing: {data}");
        handled += 1;
    }
    println!("[Cons {pid}] the queue is shut down and drained: done");
    handled
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::op(e.to_string())
}

pub(crate) fn run() -> Result<(), Failure> {
    let started = Instant::now();
    article()?;
    let name = format!("demo-{}", std::process::id());
    let queue = crash(&name)?;
    pipe_vs_procq()?;
    live_view(&queue)?;
    drop(queue);
    if procq::stats(&name).is_ok() {
        // The killed producer never detached; the demo removes its queue
        // itself rather than leave it to `procq gc`.
        procq::remove(&name)?;
    }
    println!();
    println!(
        "== Next: `import procq` in Python is a drop-in multiprocessing.Queue (crates/procq-py); \
         a redis://host:port/db/name URL goes wherever a queue name does; \
         `procq bench` compares procq with sockets, ipc-channel, ipmpsc and iceoryx2. \
         ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn article() -> Result<(), Failure> {
    let (num_processes, loops) = (2, 50);
    println!("== 1. The article: token counter, {num_processes} processes x {loops} loops pass one value through a procq queue ==");
    let counter_queue = Queue::<u64>::new(0)?;
    counter_queue.put(&0)?;
    println!("--- Starting process ---");
    let mut processes = Vec::new();
    for _ in 0..num_processes {
        processes
            .push(Process::spawn(increment_worker, (counter_queue.clone(), loops)).map_err(fail)?);
    }
    for p in &mut processes {
        p.join().map_err(fail)?;
    }
    let final_result = counter_queue.get()?;
    println!("--- All processes complete ---");
    println!("Final counter value: {final_result}");
    let expected = num_processes * loops;
    if final_result == expected {
        println!(">> Success: Value reached {expected}.");
    } else {
        return Err(Failure::op(format!(
            ">> Failure: Value reached {final_result} instead of {expected}."
        )));
    }

    println!();
    println!("== 1. The article, continued: producer-consumer, None stops the consumer ==");
    let q = Queue::<Option<String>>::new(0)?;
    let mut p1 = Process::spawn(producer, (q.clone(),)).map_err(fail)?;
    let mut p2 = Process::spawn(consumer, (q.clone(),)).map_err(fail)?;
    p1.join().map_err(fail)?;
    p2.join().map_err(fail)?;
    println!("--- Producer and consumer done ---");

    println!();
    println!(
        "== 1. The same, the procq way: one shutdown() ends two consumers, no None for each =="
    );
    let q = Queue::<String>::new(0)?;
    let mut consumers = Vec::new();
    for _ in 0..2 {
        consumers.push(Process::spawn(shutdown_consumer, (q.clone(),)).map_err(fail)?);
    }
    let mut p = Process::spawn(shutdown_producer, (q.clone(),)).map_err(fail)?;
    p.join().map_err(fail)?;
    let mut handled = 0;
    for c in &mut consumers {
        handled += c.join().map_err(fail)?;
    }
    if handled != 5 {
        return Err(Failure::op(format!(
            "the consumers handled {handled} jobs instead of 5"
        )));
    }
    println!("--- 5 jobs handled by 2 consumers, both ended by one shutdown() ---");
    Ok(())
}

/// Items each producer of the crash demo puts.
const STREAM: u64 = 100_000;
/// The killed producer dies once this many of its items have arrived.
const KILL_AFTER: u64 = 20_000;

/// Puts `from..to` as fast as the queue takes them.
fn stream(q: Queue<u64>, from: u64, to: u64) {
    for i in from..to {
        q.put(&i).expect("put");
    }
}

/// Part 2: a producer killed with SIGKILL mid-stream; returns the queue
/// (still open, for the live view).
fn crash(name: &str) -> Result<Queue<u64>, Failure> {
    println!();
    println!("== 2. Crash safety: a producer killed with SIGKILL in the middle of its stream ==");
    let q = procq::Builder::new()
        .name(name)
        .maxsize(64)
        .build::<u64>()?;
    let mut a = Process::spawn(stream, (q.clone(), 0, STREAM)).map_err(fail)?;
    let mut b = Process::spawn(stream, (q.clone(), STREAM, 2 * STREAM)).map_err(fail)?;
    let (pid_a, pid_b) = (a.pid().unwrap_or(0), b.pid().unwrap_or(0));
    println!(
        "queue {name} (maxsize 64): producer A (pid {pid_a}) puts 0..{STREAM}, producer B (pid {pid_b}) puts {STREAM}..{}, this process gets",
        2 * STREAM
    );
    let (mut next_a, mut next_b) = (0u64, STREAM);
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match q.get_timeout(Duration::from_millis(50)) {
            Ok(v) if v < STREAM => {
                // One producer's items arrive in the order it put them.
                if v != next_a {
                    return Err(Failure::op(format!(
                        "producer A: got item {v}, expected {next_a}: an item was lost or duplicated"
                    )));
                }
                next_a += 1;
                if next_a == KILL_AFTER && !killed {
                    a.kill().map_err(fail)?;
                    killed = true;
                    println!(
                        "SIGKILL sent to producer A (pid {pid_a}) after {KILL_AFTER} of its items arrived: it dies mid-stream, most likely inside a put"
                    );
                }
            }
            Ok(v) => {
                if v != next_b {
                    return Err(Failure::op(format!(
                        "producer B: got item {v}, expected {next_b}: an item was lost or duplicated"
                    )));
                }
                next_b += 1;
            }
            Err(procq::Error::Empty) if killed && !b.is_alive() && !a.is_alive() => {
                if q.qsize() == 0 {
                    break;
                }
            }
            Err(procq::Error::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        if Instant::now() > deadline {
            return Err(Failure::op("the crash demo did not finish within 60 s"));
        }
    }
    match a.join() {
        Err(procq::ProcessError::Signaled { signal: 9, .. }) => {
            println!("producer A: killed by signal 9 (SIGKILL), as intended")
        }
        other => {
            return Err(Failure::op(format!(
                "producer A was not killed by SIGKILL: {other:?}"
            )))
        }
    }
    b.join().map_err(fail)?;
    let got_b = next_b - STREAM;
    println!("producer B carried on: all {got_b} of its items arrived, in order");
    println!(
        "producer A: its items 0..{next_a} arrived in order, no gap, no duplicate; it died in put number {}",
        next_a + 1
    );
    let s = q.stats()?;
    let got = next_a + got_b;
    if got_b != STREAM || s.items_put != got || s.items_got != got || q.qsize() != 0 {
        return Err(Failure::op(format!(
            "ITEM LOST: B delivered {got_b} of {STREAM}; the queue counted {} put and {} got, this process got {got}, {} left",
            s.items_put,
            s.items_got,
            q.qsize()
        )));
    }
    println!(
        "check: the queue counted {} puts and {} gets, this process got {got}, 0 left, {} crash recovery(ies): no item lost",
        s.items_put, s.items_got, s.recoveries
    );
    Ok(q)
}

/// Argument that makes `procq` the writing end of the demo's pipe.
const PIPE_WRITER_ARG: &str = "__procq-demo-pipe-writer";
/// Items of part 3, and their size.
const PIPE_ITEMS: u64 = 200_000;
const PIPE_ITEM_BYTES: usize = 100;

/// The demo's 100-byte text item number `i`: its number, then padding.
fn item(i: u64) -> String {
    format!("{i:0>12}{}", "-".repeat(PIPE_ITEM_BYTES - 12))
}

fn item_number(v: &[u8]) -> u64 {
    std::str::from_utf8(v.get(..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Runs this process as the writing end of the demo's pipe if it was
/// started as one: the items on stdout, a 4-byte length before each, one
/// write per item (as `multiprocessing.Queue`'s feeder thread does).
pub(crate) fn run_pipe_writer_if_requested() -> Option<ExitCode> {
    if std::env::args_os().nth(1)? != PIPE_WRITER_ARG {
        return None;
    }
    // An unbuffered handle on fd 1: std's stdout would batch the writes.
    let fd = std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned();
    let mut out = match fd {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => return Some(ExitCode::FAILURE),
    };
    let mut frame = Vec::with_capacity(4 + PIPE_ITEM_BYTES);
    for i in 0..PIPE_ITEMS {
        let v = item(i);
        frame.clear();
        frame.extend_from_slice(&(v.len() as u32).to_le_bytes());
        frame.extend_from_slice(v.as_bytes());
        if out.write_all(&frame).is_err() {
            return Some(ExitCode::FAILURE);
        }
    }
    Some(ExitCode::SUCCESS)
}

fn produce_items(q: Queue<String>) {
    for i in 0..PIPE_ITEMS {
        q.put(&item(i)).expect("put");
    }
}

/// Items per second from the first item to the last (process start-up
/// is not timed, the same way for both).
fn rate(first: Option<Instant>) -> f64 {
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    (PIPE_ITEMS - 1) as f64 / secs.max(1e-9)
}

fn check_item(v: &[u8], expected: u64) -> Result<(), Failure> {
    if v.len() != PIPE_ITEM_BYTES || item_number(v) != expected {
        return Err(Failure::op(format!("item {expected} arrived wrong")));
    }
    Ok(())
}

/// Part 3: the same items through a pipe and through procq.
fn pipe_vs_procq() -> Result<(), Failure> {
    println!();
    println!(
        "== 3. The same {PIPE_ITEMS} text items of {PIPE_ITEM_BYTES} B from one process to another: a pipe, then procq =="
    );
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(PIPE_WRITER_ARG)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let mut r = BufReader::with_capacity(
        64 << 10,
        child.stdout.take().ok_or_else(|| fail("no pipe"))?,
    );
    let mut first = None;
    for i in 0..PIPE_ITEMS {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        // An owned item per get, as procq's get returns one.
        let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut v)?;
        let v = String::from_utf8(v).map_err(|_| fail("not text"))?;
        check_item(v.as_bytes(), i)?;
        first.get_or_insert_with(Instant::now);
    }
    let pipe = rate(first);
    if !child.wait()?.success() {
        return Err(fail("the pipe's writer failed"));
    }
    println!(
        "pipe, one write per item (as multiprocessing.Queue does): {:>6.2} M items/s",
        pipe / 1e6
    );

    let q = Queue::<String>::new(1024)?;
    let mut p = Process::spawn(produce_items, (q.clone(),)).map_err(fail)?;
    let mut first = None;
    for i in 0..PIPE_ITEMS {
        let v = q.get_timeout(Duration::from_secs(30))?;
        check_item(v.as_bytes(), i)?;
        first.get_or_insert_with(Instant::now);
    }
    let ours = rate(first);
    p.join().map_err(fail)?;
    println!(
        "procq Queue<String> (maxsize 1024):                      {:>6.2} M items/s = {:.1}x the pipe, every item checked",
        ours / 1e6,
        ours / pipe.max(1e-9)
    );
    Ok(())
}

/// Part 4: the crash demo's queue, still open, as the commands show it.
fn live_view(q: &Queue<u64>) -> Result<(), Failure> {
    println!();
    println!(
        "== 4. The live queue, as `procq ls` and `procq stat {}` show it ==",
        q.name()
    );
    println!("$ procq ls   (this queue's row)");
    crate::inspect::ls_names(&[q.name().to_owned()], false)?;
    println!("$ procq stat {}", q.name());
    crate::inspect::stat(q.name(), false, false, None)
}
