//! The producer, consumer, ping-pong and load processes of the suite.
//!
//! The suite measures real OS processes. Rather than depend on a process
//! API, it re-executes its own binary (`std::env::current_exe`) with the
//! hidden first argument [`WORKER_ARG`] followed by a JSON [`Role`]; the
//! binary's `main` hands such invocations to [`run_worker_if_requested`].
//!
//! Protocol between the parent (see `harness`) and a worker, one line each:
//! 1. the worker sets up (opens its queue, binds or connects its socket) and
//!    prints `ready [info]` on stdout;
//! 2. it waits for the line `go` on stdin (for load workers: for the end of
//!    stdin, which means "stop");
//! 3. it does its work and prints `done <end> <values...>`, where `<end>` is
//!    `CLOCK_MONOTONIC` in nanoseconds when its last item arrived. The clock
//!    is the same in every process, so the parent can time the whole run
//!    from its own `go` to the last consumer's `<end>`, consumer side, end to
//!    end.
//!
//! Anything else a worker has to say goes to stderr, and a failing worker
//! exits with status 1, which the parent reports as the case's error.

use std::borrow::Cow;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipc_channel::ipc::{self, IpcBytesSender, IpcOneShotServer, IpcSender};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::item::Item;

#[cfg(feature = "iceoryx2")]
mod iceoryx2;
#[cfg(feature = "ipmpsc")]
mod ipmpsc;
mod protocol;
#[cfg(feature = "iceoryx2")]
pub(crate) use self::iceoryx2::iceoryx2_prefix;
use self::protocol::{
    check_in_place, expect_echo, ping_pong, process_cpu_ns, say, say_ponger_done, wait_go, Result,
};
pub(crate) use self::protocol::{monotonic_ns, thread_cpu_ns, Bincode};

/// First command-line argument that turns the benchmark binary into a
/// worker process. Any binary that runs the suite (`procq-bench`, or the
/// `procq` CLI's `bench` command) must call [`run_worker_if_requested`]
/// first thing in `main`.
///
/// ```
/// assert!(procq_bench::WORKER_ARG.starts_with("__"));
/// ```
pub const WORKER_ARG: &str = "__procq-bench-worker";

/// Runs this process as a benchmark worker if it was started as one
/// (`argv[1] == WORKER_ARG`), returning its exit code; `None` otherwise.
///
/// Call it at the top of `main`, before parsing arguments:
///
/// ```
/// fn main() -> std::process::ExitCode {
///     if let Some(code) = procq_bench::run_worker_if_requested() {
///         return code;
///     }
///     // ... the program's own argument parsing ...
///     std::process::ExitCode::SUCCESS
/// }
/// ```
pub fn run_worker_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != WORKER_ARG {
        return None;
    }
    let Some(spec) = args.next().and_then(|s| s.into_string().ok()) else {
        eprintln!("procq-bench worker: missing role argument");
        return Some(ExitCode::FAILURE);
    };
    let role: Role = match serde_json::from_str(&spec) {
        Ok(role) => role,
        Err(e) => {
            eprintln!("procq-bench worker: bad role {spec:?}: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    Some(match run(role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procq-bench worker ({spec}): {e}");
            ExitCode::FAILURE
        }
    })
}

/// What one worker process does. Serialized as JSON on its command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Role {
    /// Puts `items` items to a procq queue, `batch` per `put_many` (1 = `put`),
    /// after `warmup` untimed ones (see `flows::warmup_items`).
    ProcqProducer {
        queue: String,
        item: Item,
        warmup: u64,
        items: u64,
        batch: usize,
    },
    /// Gets `items` items from a procq queue, up to `batch` per `get_many`,
    /// after `warmup` untimed ones.
    ProcqConsumer {
        queue: String,
        item: Item,
        warmup: u64,
        items: u64,
        batch: usize,
    },
    /// Puts `items` items of `len` bytes to a procq queue, each written in
    /// place with `RawQueue::put_with` (a copy of one payload, as the
    /// iceoryx2 publisher writes its loaned samples).
    ProcqLoanProducer {
        queue: String,
        len: usize,
        warmup: u64,
        items: u64,
    },
    /// Gets `items` items with `RawQueue::get_with`, each checked in place
    /// in shared memory (no copy out), as the iceoryx2 zero-copy subscriber.
    ProcqLoanConsumer {
        queue: String,
        len: usize,
        warmup: u64,
        items: u64,
    },
    /// Binds a Unix socket at `path`, accepts one connection, reads `items`.
    SocketConsumer {
        path: String,
        item: Item,
        items: u64,
    },
    /// Connects to `path` and writes `items` length-prefixed items.
    SocketProducer {
        path: String,
        item: Item,
        items: u64,
    },
    /// Serves an ipc-channel one-shot server (its name in the `ready` line),
    /// receives the consumer's byte sender through it, sends `items`.
    IpcProducer { item: Item, items: u64 },
    /// Connects to the producer's one-shot server and receives `items`.
    IpcConsumer {
        server: String,
        item: Item,
        items: u64,
    },
    /// Sends `warmup + round_trips` pings and times each round trip.
    ProcqPinger {
        ping: String,
        pong: String,
        warmup: u64,
        round_trips: u64,
    },
    /// Answers every ping.
    ProcqPonger {
        ping: String,
        pong: String,
        count: u64,
    },
    /// Binds `path`, accepts the pinger, answers every ping.
    SocketPonger { path: String, count: u64 },
    /// Connects to `path`, times each round trip.
    SocketPinger {
        path: String,
        warmup: u64,
        round_trips: u64,
    },
    /// Background load: puts (or gets) `u64`s on `queue` until stdin closes.
    Load { queue: String, producer: bool },
    /// Creates an ipmpsc ring of `bound` items at `path`, receives `items`.
    IpmpscConsumer {
        path: String,
        item: Item,
        items: u64,
        bound: usize,
        enc: Bincode,
    },
    /// Opens the ring at `path`, sends `items`.
    IpmpscProducer {
        path: String,
        item: Item,
        items: u64,
        enc: Bincode,
    },
    /// Creates both ipmpsc rings, answers every ping.
    IpmpscPonger {
        ping: String,
        pong: String,
        count: u64,
    },
    /// Opens both rings, times each round trip.
    IpmpscPinger {
        ping: String,
        pong: String,
        warmup: u64,
        round_trips: u64,
    },
    /// Opens the iceoryx2 service `name` (buffer of `bound` samples, no
    /// overflow), busy-polls `items` samples: copied out, or read in place.
    Iceoryx2Consumer {
        name: String,
        item: Item,
        warmup: u64,
        items: u64,
        bound: usize,
        zero_copy: bool,
    },
    /// Creates the service and its publisher before the subscriber exists,
    /// publishes `items` (waiting while the buffer is full).
    Iceoryx2Producer {
        name: String,
        item: Item,
        warmup: u64,
        items: u64,
        bound: usize,
    },
    /// Creates both services, answers every ping (busy-polling).
    Iceoryx2Ponger {
        ping: String,
        pong: String,
        count: u64,
    },
    /// Opens both services, times each round trip (busy-polling).
    Iceoryx2Pinger {
        ping: String,
        pong: String,
        warmup: u64,
        round_trips: u64,
    },
}

fn run(role: Role) -> Result<()> {
    match role {
        Role::ProcqProducer {
            queue,
            item,
            warmup,
            items,
            batch,
        } => match item {
            Item::U64 => procq_produce::<u64>(&queue, (warmup, items), batch, Cow::Owned),
            Item::Bytes(n) => {
                // Put by reference, as the peers send the same payload
                // (iceoryx2 writes it into a loaned sample, the socket
                // writes it): no copy of it per item.
                let payload = vec![item.fill_byte(); n];
                procq_produce::<Vec<u8>>(&queue, (warmup, items), batch, |_| {
                    Cow::Borrowed(&payload)
                })
            }
        },
        Role::ProcqConsumer {
            queue,
            item,
            warmup,
            items,
            batch,
        } => match item {
            Item::U64 => procq_consume::<u64>(&queue, (warmup, items), batch, |v| *v),
            Item::Bytes(_) => {
                procq_consume::<Vec<u8>>(&queue, (warmup, items), batch, |v| v.len() as u64)
            }
        },
        Role::ProcqLoanProducer {
            queue,
            len,
            warmup,
            items,
        } => {
            let q = procq::RawQueue::open(&queue)?;
            let payload = vec![Item::Bytes(len).fill_byte(); len];
            let put = |n: u64| -> Result<()> {
                for _ in 0..n {
                    q.put_with(len, None, |buf| buf.copy_from_slice(&payload))?;
                }
                Ok(())
            };
            say("ready")?;
            put(warmup)?;
            say("warm")?;
            wait_go()?;
            put(items)?;
            say(&format!("done {}", monotonic_ns()))
        }
        Role::ProcqLoanConsumer {
            queue,
            len,
            warmup,
            items,
        } => {
            let q = procq::RawQueue::open(&queue)?;
            let get = |n: u64| -> Result<u64> {
                let mut sum = 0u64;
                for _ in 0..n {
                    sum = sum.wrapping_add(q.get_with(None, |bytes| check_in_place(bytes, len))?);
                }
                Ok(sum)
            };
            say("ready")?;
            get(warmup)?;
            say("warm")?;
            wait_go()?;
            let sum = get(items)?;
            say(&format!("done {} {sum}", monotonic_ns()))
        }
        Role::SocketConsumer { path, item, items } => {
            let listener = UnixListener::bind(&path)?;
            say("ready")?;
            let (stream, _) = listener.accept()?;
            wait_go()?;
            consume_frames(
                BufReader::with_capacity(64 * 1024, stream),
                item,
                items,
                read_frame,
            )
        }
        Role::SocketProducer { path, item, items } => {
            let mut stream = UnixStream::connect(&path)?;
            say("ready")?;
            wait_go()?;
            let mut frame = Vec::new();
            for i in 0..items {
                encode_frame(item, i, &mut frame)?;
                // One write per item: what a pipe-based queue does.
                stream.write_all(&frame)?;
            }
            say(&format!("done {}", monotonic_ns()))
        }
        Role::IpcProducer { item, items } => {
            let (server, name) = IpcOneShotServer::<IpcBytesSender>::new()?;
            say(&format!("ready {name}"))?;
            let (_rx, tx) = server.accept()?;
            wait_go()?;
            let mut frame = Vec::new();
            for i in 0..items {
                encode_item(item, i, &mut frame)?;
                tx.send(&frame)?;
            }
            say(&format!("done {}", monotonic_ns()))
        }
        Role::IpcConsumer {
            server,
            item,
            items,
        } => {
            let (tx, rx) = ipc::bytes_channel()?;
            IpcSender::<IpcBytesSender>::connect(server)?.send(tx)?;
            say("ready")?;
            wait_go()?;
            consume_frames(rx, item, items, |rx, buf| {
                *buf = rx.recv().map_err(|e| io::Error::other(format!("{e:?}")))?;
                Ok(())
            })
        }
        Role::ProcqPinger {
            ping,
            pong,
            warmup,
            round_trips,
        } => {
            let ping = procq::Queue::<u64>::open(&ping)?;
            let pong = procq::Queue::<u64>::open(&pong)?;
            say("ready")?;
            wait_go()?;
            ping_pong(warmup, round_trips, |i| {
                ping.put(&i)?;
                expect_echo(i, pong.get()?)
            })
        }
        Role::ProcqPonger { ping, pong, count } => {
            let ping = procq::Queue::<u64>::open(&ping)?;
            let pong = procq::Queue::<u64>::open(&pong)?;
            say("ready")?;
            wait_go()?;
            let cpu = process_cpu_ns();
            for _ in 0..count {
                pong.put(&ping.get()?)?;
            }
            say_ponger_done(cpu)
        }
        Role::SocketPonger { path, count } => {
            let listener = UnixListener::bind(&path)?;
            say("ready")?;
            let (stream, _) = listener.accept()?;
            wait_go()?;
            let cpu = process_cpu_ns();
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut writer = stream;
            let (mut buf, mut frame) = (Vec::new(), Vec::new());
            for _ in 0..count {
                read_frame(&mut reader, &mut buf)?;
                let v: u64 = postcard::from_bytes(&buf)?;
                encode_frame(Item::U64, v, &mut frame)?;
                writer.write_all(&frame)?;
            }
            say_ponger_done(cpu)
        }
        Role::SocketPinger {
            path,
            warmup,
            round_trips,
        } => {
            let stream = UnixStream::connect(&path)?;
            say("ready")?;
            wait_go()?;
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut writer = stream;
            let (mut buf, mut frame) = (Vec::new(), Vec::new());
            ping_pong(warmup, round_trips, |i| {
                encode_frame(Item::U64, i, &mut frame)?;
                writer.write_all(&frame)?;
                read_frame(&mut reader, &mut buf)?;
                expect_echo(i, postcard::from_bytes(&buf)?)
            })
        }
        Role::Load { queue, producer } => load(&queue, producer),
        peer => run_peer(peer),
    }
}

fn run_peer(role: Role) -> Result<()> {
    match role {
        #[cfg(feature = "ipmpsc")]
        Role::IpmpscConsumer {
            path,
            item,
            items,
            bound,
            enc,
        } => ipmpsc::ipmpsc_consume(&path, item, items, bound, enc),
        #[cfg(feature = "ipmpsc")]
        Role::IpmpscProducer {
            path,
            item,
            items,
            enc,
        } => ipmpsc::ipmpsc_produce(&path, item, items, enc),
        #[cfg(feature = "ipmpsc")]
        Role::IpmpscPonger { ping, pong, count } => ipmpsc::ipmpsc_ponger(&ping, &pong, count),
        #[cfg(feature = "ipmpsc")]
        Role::IpmpscPinger {
            ping,
            pong,
            warmup,
            round_trips,
        } => ipmpsc::ipmpsc_pinger(&ping, &pong, warmup, round_trips),
        #[cfg(feature = "iceoryx2")]
        Role::Iceoryx2Consumer {
            name,
            item,
            warmup,
            items,
            bound,
            zero_copy,
        } => self::iceoryx2::iceoryx2_consume(&name, item, (warmup, items), bound, zero_copy),
        #[cfg(feature = "iceoryx2")]
        Role::Iceoryx2Producer {
            name,
            item,
            warmup,
            items,
            bound,
        } => self::iceoryx2::iceoryx2_produce(&name, item, (warmup, items), bound),
        #[cfg(feature = "iceoryx2")]
        Role::Iceoryx2Ponger { ping, pong, count } => {
            self::iceoryx2::iceoryx2_ponger(&ping, &pong, count)
        }
        #[cfg(feature = "iceoryx2")]
        Role::Iceoryx2Pinger {
            ping,
            pong,
            warmup,
            round_trips,
        } => self::iceoryx2::iceoryx2_pinger(&ping, &pong, warmup, round_trips),
        other => Err(format!(
            "{other:?}: not a peer role this procq-bench was built with (features ipmpsc, iceoryx2)"
        )
        .into()),
    }
}

fn procq_produce<'a, T: Serialize + DeserializeOwned + Clone + 'static>(
    name: &str,
    (warmup, items): (u64, u64),
    batch: usize,
    make: impl Fn(u64) -> Cow<'a, T>,
) -> Result<()> {
    let q = procq::Queue::<T>::open(name)?;
    say("ready")?;
    let put = |n: u64| -> Result<()> {
        if batch <= 1 {
            for i in 0..n {
                q.put(&make(i))?;
            }
        } else {
            let mut chunk = Vec::with_capacity(batch);
            let mut i = 0;
            while i < n {
                chunk.clear();
                let end = n.min(i + batch as u64);
                chunk.extend((i..end).map(&make));
                q.put_many(chunk.iter().map(|c| &**c))?;
                i = end;
            }
        }
        Ok(())
    };
    put(warmup)?;
    say("warm")?;
    wait_go()?;
    put(items)?;
    say(&format!("done {}", monotonic_ns()))
}

/// Gets exactly `items` items; prints the sum of `check` over them so that
/// the parent can tell that nothing was lost or duplicated.
fn procq_consume<T: Serialize + DeserializeOwned + 'static>(
    name: &str,
    (warmup, items): (u64, u64),
    batch: usize,
    check: impl Fn(&T) -> u64,
) -> Result<()> {
    let q = procq::Queue::<T>::open(name)?;
    say("ready")?;
    let get = |n: u64| -> Result<u64> {
        let mut sum = 0u64;
        let mut got = 0u64;
        while got < n {
            if batch <= 1 {
                sum = sum.wrapping_add(check(&q.get()?));
                got += 1;
            } else {
                let want = batch.min((n - got) as usize);
                for v in q.get_many(want)? {
                    sum = sum.wrapping_add(check(&v));
                    got += 1;
                }
            }
        }
        Ok(sum)
    };
    get(warmup)?;
    say("warm")?;
    wait_go()?;
    let sum = get(items)?;
    say(&format!("done {} {sum}", monotonic_ns()))
}

/// The postcard encoding of item number `i` (the bytes procq stores).
pub(crate) fn encode_item(item: Item, i: u64, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    match item {
        Item::U64 => *out = postcard::to_extend(&i, std::mem::take(out))?,
        Item::Bytes(n) => {
            *out = postcard::to_extend(&n, std::mem::take(out))?;
            out.resize(out.len() + n, item.fill_byte());
        }
    }
    Ok(())
}

/// A 4-byte little-endian length, then the item's encoding: the framing of
/// a pipe-based queue such as Python's `multiprocessing.Queue`.
fn encode_frame(item: Item, i: u64, out: &mut Vec<u8>) -> Result<()> {
    let mut body = std::mem::take(out);
    encode_item(item, i, &mut body)?;
    out.clear();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    r.read_exact(buf)
}

/// Decodes one encoded item into what a typed receiver would hand its
/// caller (a `u64`, or a fresh `Vec<u8>` as procq's `get` returns) and
/// returns its checksum contribution.
pub(crate) fn decode_item(item: Item, bytes: &[u8]) -> Result<u64> {
    Ok(match item {
        Item::U64 => postcard::from_bytes::<u64>(bytes)?,
        Item::Bytes(_) => {
            let (len, rest) = postcard::take_from_bytes::<usize>(bytes)?;
            if len != rest.len() {
                return Err("bad byte-string length".into());
            }
            std::hint::black_box(rest.to_vec()).len() as u64
        }
    })
}

fn consume_frames<R>(
    mut source: R,
    item: Item,
    items: u64,
    mut next: impl FnMut(&mut R, &mut Vec<u8>) -> io::Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut sum = 0u64;
    for _ in 0..items {
        next(&mut source, &mut buf)?;
        sum = sum.wrapping_add(decode_item(item, &buf)?);
    }
    say(&format!("done {} {sum}", monotonic_ns()))
}

/// Keeps a queue busy until the parent closes our stdin.
fn load(name: &str, producer: bool) -> Result<()> {
    let q = procq::Queue::<u64>::open(name)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    say("ready")?;
    std::thread::spawn(move || {
        // End of stdin (or any error reading it) means "stop".
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        flag.store(true, Ordering::Relaxed);
    });
    let step = Duration::from_millis(10);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let r = if producer {
            q.put_timeout(&i, step)
        } else {
            q.get_timeout(step).map(drop)
        };
        match r {
            Ok(()) | Err(procq::Error::Full) | Err(procq::Error::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        i += 1;
    }
    let mut out = BufWriter::new(io::stdout().lock());
    writeln!(out, "done {} {i}", monotonic_ns())?;
    out.flush()?;
    Ok(())
}
