//! A Rust process on the other end of Python procq queues: it reads items
//! that Python put and answers with items Python reads. Used by the Python
//! test suite (`tests/test_interop.py`) and as the README's interop example.
//!
//! ```text
//! rust_peer tagged <inbox> <outbox> <count>   # codec='pickle' queues
//! rust_peer raw    <inbox> <outbox> <count>   # codec='bytes' queues
//! ```
//!
//! `tagged`: each item is a record in procq's Python item format (a tag
//! byte, then the data): bytes (`b`) come back reversed, str (`s`)
//! upper-cased, int (`i`, 8 bytes little-endian) plus one. Anything else
//! (a pickle, `0x80`) is an error: Rust cannot read pickles.
//!
//! `raw`: each item is a plain byte string; it comes back reversed.
//!
//! Every wait has a 10 s timeout, so a broken test fails instead of hanging.

use std::process::ExitCode;
use std::time::Duration;

use procq::RawQueue;

/// Longest wait for one item.
const WAIT: Duration = Duration::from_secs(10);

/// Answers one record in the tagged format.
fn answer_tagged(record: &[u8]) -> Result<Vec<u8>, String> {
    let (&tag, data) = record.split_first().ok_or("empty record")?;
    let mut out = vec![tag];
    match tag {
        b'b' => out.extend(data.iter().rev()),
        b's' => {
            let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
            out.extend_from_slice(text.to_uppercase().as_bytes());
        }
        b'i' => {
            let bytes: [u8; 8] = data.try_into().map_err(|_| "int must have 8 bytes")?;
            let n = i64::from_le_bytes(bytes).wrapping_add(1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        other => return Err(format!("tag 0x{other:02x} is not bytes, str or int")),
    }
    Ok(out)
}

fn run(args: &[String]) -> Result<(), String> {
    let [mode, inbox, outbox, count] = args else {
        return Err("usage: rust_peer tagged|raw <inbox> <outbox> <count>".into());
    };
    let count: usize = count.parse().map_err(|_| "count must be a number")?;
    let inbox = RawQueue::open(inbox).map_err(|e| e.to_string())?;
    let outbox = RawQueue::open(outbox).map_err(|e| e.to_string())?;
    for _ in 0..count {
        let record = inbox.get_timeout(WAIT).map_err(|e| e.to_string())?;
        let reply = match mode.as_str() {
            "tagged" => answer_tagged(&record)?,
            "raw" => record.iter().rev().copied().collect(),
            other => return Err(format!("unknown mode {other:?}")),
        };
        outbox
            .put_timeout(&reply, WAIT)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust_peer: {e}");
            ExitCode::FAILURE
        }
    }
}
