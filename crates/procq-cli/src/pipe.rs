//! `put` and `get`: shell pipelines into and out of queues; `shutdown`,
//! which ends them.
//!
//! Item format: the postcard encoding of a `String`/`Vec<u8>` — a LEB128
//! varint length followed by the bytes — so `seq 10 | procq put jobs`
//! feeds a Rust `Queue<String>` and `procq get` prints what one puts.
//!
//! Framing on the shell side ([`Framing`]): one item per line, per
//! NUL-terminated record (`-0`, as `find -print0` and `xargs -0`), or the
//! whole of stdin as one item (`--raw`, printed back byte for byte by
//! `get --raw`). `get --stored` prints items of other formats undecoded.
//!
//! A Redis URL works as a name. Neither command creates a missing queue
//! (`procq::RawQueue::open` never does, on either backend) unless `put
//! --create` asks for it: a missing queue is an error (exit 2).

use std::io::{BufRead, Read, Write};
use std::time::Duration;

use crate::failure::Failure;

/// How items are cut out of stdin (`put`) and written to stdout (`get`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// One item per line; `get` ends each with a newline.
    Lines,
    /// NUL-separated (a final NUL optional); `get` ends each with a NUL.
    Null,
    /// `put`: all of stdin is one item; `get`: each item's bytes, nothing
    /// added.
    Raw,
    /// `get` only: each item as stored, undecoded, nothing added.
    Stored,
}

/// The framing the flags ask for (clap rejects the conflicting pairs).
pub(crate) fn framing(raw: bool, null: bool, stored: bool) -> Framing {
    match (raw, null, stored) {
        (true, _, _) => Framing::Raw,
        (_, _, true) => Framing::Stored,
        (_, true, _) => Framing::Null,
        _ => Framing::Lines,
    }
}

/// Opens the queue `name` (a name or a Redis URL); creates it if it is
/// missing and `create` is set: a persistent shared-memory queue, or a
/// Redis queue, unbounded when `maxsize` is 0.
fn open_or_create(name: &str, create: bool, maxsize: usize) -> Result<procq::RawQueue, Failure> {
    match procq::RawQueue::open(name) {
        Err(procq::Error::NotFound(_)) if create => {
            let mut b = procq::Builder::new().name(name).persistent(true);
            if maxsize > 0 {
                // Only a bound asked for is required of a Redis queue
                // someone else created meanwhile.
                b = b.maxsize(maxsize);
            }
            match b.build_raw() {
                // Someone else created it meanwhile: use theirs.
                Err(procq::Error::AlreadyExists(_)) => Ok(procq::RawQueue::open(name)?),
                other => Ok(other?),
            }
        }
        other => Ok(other?),
    }
}

fn seconds(timeout: Option<f64>) -> Result<Option<Duration>, Failure> {
    match timeout {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(
            Duration::from_secs_f64(s).max(Duration::from_nanos(1)),
        )),
        Some(s) => Err(Failure::usage(format!("invalid --timeout {s}"))),
    }
}

/// Puts `data` as one `String`/`Vec<u8>`-encoded item; `done` items went in
/// before it (for the timeout message).
fn put_one(
    q: &procq::RawQueue,
    data: &[u8],
    timeout: Option<Duration>,
    done: u64,
) -> Result<(), Failure> {
    let mut prefix = [0u8; 10];
    let head =
        postcard::to_slice(&data.len(), &mut prefix).map_err(|e| Failure::op(e.to_string()))?;
    match q.put_parts(head, data, timeout) {
        Err(procq::Error::Full) => Err(Failure::op(format!(
            "timed out after {done} item(s) went in: queue {:?} stayed full",
            q.display_name()
        ))),
        Err(procq::Error::ShutDown) => Err(Failure::op(format!(
            "queue {:?} is shut down: {done} item(s) went in before",
            q.display_name()
        ))),
        other => Ok(other?),
    }
}

pub(crate) fn put(
    name: &str,
    create: bool,
    maxsize: usize,
    framing: Framing,
    timeout: Option<f64>,
) -> Result<(), Failure> {
    let q = open_or_create(name, create, maxsize)?;
    let timeout = seconds(timeout)?;
    let mut stdin = std::io::stdin().lock();
    let sep = match framing {
        Framing::Raw | Framing::Stored => {
            let mut all = Vec::new();
            stdin.read_to_end(&mut all)?;
            return put_one(&q, &all, timeout, 0);
        }
        Framing::Null => 0,
        Framing::Lines => b'\n',
    };
    let mut item = Vec::new();
    let mut done = 0u64;
    loop {
        item.clear();
        if stdin.read_until(sep, &mut item)? == 0 {
            return Ok(());
        }
        if item.last() == Some(&sep) {
            item.pop();
        }
        put_one(&q, &item, timeout, done)?;
        done += 1;
    }
}

/// The payload of a `String`/`Vec<u8>`-encoded item, or why it is not one.
fn decode(record: &[u8]) -> Result<&[u8], String> {
    match postcard::take_from_bytes::<usize>(record) {
        Ok((len, rest)) if len == rest.len() => Ok(rest),
        _ => Err(format!(
            "item of {} bytes is not a String/Vec<u8> item (use --stored to print it as stored)",
            record.len()
        )),
    }
}

pub(crate) fn get(
    name: &str,
    count: u64,
    timeout: Option<f64>,
    follow: bool,
    framing: Framing,
) -> Result<(), Failure> {
    let q = open_or_create(name, false, 0)?;
    let timeout = seconds(timeout)?;
    let mut out = std::io::stdout().lock();
    let mut got = 0u64;
    while follow || got < count {
        // Copy the item out first: writing to a slow pipe must not hold the
        // queue's lock. An item this framing cannot print stays in the
        // queue, first in line (a Redis get cannot leave it: it is gone).
        let mut bad = None;
        let got_one = if framing == Framing::Stored {
            q.get_with(timeout, |b| Some(b.to_vec()))
        } else {
            let printable = |b: &[u8]| match decode(b) {
                Ok(_) => Some(b.to_vec()),
                Err(why) => {
                    bad = Some(why);
                    None
                }
            };
            match q.get_with_or_leave(timeout, printable) {
                Err(procq::Error::Unsupported { .. }) => q.get_with(timeout, |b| Some(b.to_vec())),
                other => other,
            }
        };
        let record = match got_one {
            Err(procq::Error::Empty) => {
                return Err(Failure::op(format!("timed out after {got} item(s)")))
            }
            // The end of the stream: what `--follow` waits for.
            Err(procq::Error::ShutDown) if follow => break,
            Err(procq::Error::ShutDown) => {
                return Err(Failure::op(format!(
                    "queue {:?} is shut down and empty after {got} item(s)",
                    q.display_name()
                )))
            }
            Ok(None) => {
                return Err(Failure::op(format!(
                    "item {}: {}; it stays first in the queue",
                    got + 1,
                    bad.unwrap_or_default()
                )))
            }
            Ok(Some(record)) => record,
            Err(e) => return Err(e.into()),
        };
        got += 1;
        let written = if framing == Framing::Stored {
            out.write_all(&record)
        } else {
            let text = decode(&record).map_err(|bad| Failure::op(format!("item {got}: {bad}")))?;
            out.write_all(text).and_then(|()| match framing {
                Framing::Lines => out.write_all(b"\n"),
                Framing::Null => out.write_all(b"\0"),
                Framing::Raw | Framing::Stored => Ok(()),
            })
        };
        match written.and_then(|()| if follow { out.flush() } else { Ok(()) }) {
            // `procq get x --follow | head -1`: the reader left; stop quietly
            // (the item being written when it left is lost with the pipe).
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `procq shutdown`: see `procq::RawQueue::shutdown`.
pub(crate) fn shutdown(name: &str, immediate: bool) -> Result<(), Failure> {
    Ok(open_or_create(name, false, 0)?.shutdown(immediate)?)
}
