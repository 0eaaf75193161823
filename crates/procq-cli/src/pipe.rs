//! `put` and `get`: shell pipelines into and out of queues.
//!
//! Item format: the postcard encoding of a `String`/`Vec<u8>` — a LEB128
//! varint length followed by the bytes — so `seq 10 | procq put jobs`
//! feeds a Rust `Queue<String>` and `procq get` prints what one puts.
//!
//! A Redis URL works as a name. Opening a Redis queue creates it if it is
//! missing, so both commands ask `procq::stats` first: without `put
//! --create`, a missing queue is an error (exit 2) on Redis as in shared
//! memory.

use std::io::{BufRead, Read, Write};
use std::time::Duration;

use crate::{is_url, Failure};

/// Opens the Redis queue at `url` if it exists; creates it (unbounded when
/// `maxsize` is 0) if it does not and `create` is set.
fn open_url(url: &str, create: bool, maxsize: usize) -> Result<procq::RawQueue, Failure> {
    match procq::stats(url) {
        Ok(_) => Ok(procq::RawQueue::open(url)?),
        Err(procq::Error::NotFound(_)) if create => {
            let mut b = procq::Builder::new().name(url);
            if maxsize > 0 {
                // Only a bound asked for is required of a queue someone
                // else created meanwhile.
                b = b.maxsize(maxsize);
            }
            Ok(b.build_raw()?)
        }
        Err(e) => Err(e.into()),
    }
}

fn open_or_create(name: &str, create: bool, maxsize: usize) -> Result<procq::RawQueue, Failure> {
    if is_url(name) {
        return open_url(name, create, maxsize);
    }
    procq::validate_name(name)?;
    match procq::RawQueue::open(name) {
        Err(procq::Error::NotFound(_)) if create => {
            match procq::Builder::new()
                .name(name)
                .maxsize(maxsize)
                .persistent(true)
                .build_raw()
            {
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

/// Puts `data` as one String/Vec<u8>-encoded item.
fn put_one(q: &procq::RawQueue, data: &[u8], timeout: Option<Duration>) -> Result<(), Failure> {
    let mut prefix = [0u8; 10];
    let head =
        postcard::to_slice(&data.len(), &mut prefix).map_err(|e| Failure::op(e.to_string()))?;
    match q.put_parts(head, data, timeout) {
        Err(procq::Error::Full) => Err(Failure::op(format!(
            "timed out: queue {:?} stayed full",
            q.display_name()
        ))),
        other => Ok(other?),
    }
}

pub(crate) fn put(
    name: &str,
    create: bool,
    maxsize: usize,
    raw: bool,
    timeout: Option<f64>,
) -> Result<(), Failure> {
    let q = open_or_create(name, create, maxsize)?;
    let timeout = seconds(timeout)?;
    let mut stdin = std::io::stdin().lock();
    if raw {
        let mut all = Vec::new();
        stdin.read_to_end(&mut all)?;
        return put_one(&q, &all, timeout);
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        put_one(&q, &line, timeout)?;
    }
}

/// The payload of a String/Vec<u8>-encoded item, or why it is not one.
fn decode(record: &[u8]) -> Result<&[u8], String> {
    match postcard::take_from_bytes::<usize>(record) {
        Ok((len, rest)) if len == rest.len() => Ok(rest),
        _ => Err(format!(
            "item of {} bytes is not a String/Vec<u8> item (use --raw to print its bytes)",
            record.len()
        )),
    }
}

pub(crate) fn get(
    name: &str,
    count: u64,
    timeout: Option<f64>,
    follow: bool,
    raw: bool,
) -> Result<(), Failure> {
    let q = open_or_create(name, false, 0)?;
    let timeout = seconds(timeout)?;
    let mut out = std::io::stdout().lock();
    let mut got = 0u64;
    while follow || got < count {
        // Copy the item out first: writing to a slow pipe must not hold the
        // queue's lock.
        let record = match q.get_with(timeout, <[u8]>::to_vec) {
            Err(procq::Error::Empty) => {
                return Err(Failure::op(format!("timed out after {got} item(s)")))
            }
            other => other?,
        };
        got += 1;
        let written = if raw {
            out.write_all(&record)
        } else {
            let text = decode(&record).map_err(|bad| Failure::op(format!("item {got}: {bad}")))?;
            out.write_all(text).and_then(|()| out.write_all(b"\n"))
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
