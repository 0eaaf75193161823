//! Acknowledgements sent without waiting for their reply (see `acks.rs`),
//! from the connections' side: reading those replies, the ones owed (whose
//! reply failed, so they may not have run) and sending them again.
//!
//! A reply is read by whoever uses its connection next; a consumer that
//! then makes no call leaves it unread, and an acknowledgement that did not
//! reach the server would wait for that consumer's next call while `join()`
//! elsewhere waits for it. So the handle's heartbeat (`lease.rs`) runs
//! [`Pool::flush_owed`] at every tick too, for the replies unread since the
//! previous one: a lost acknowledgement is sent again within two ticks of
//! the lease, however long its consumer then idles.

use std::io;
use std::time::{Duration, Instant};

use ::redis::{Cmd, RedisError, RedisResult, Value};

use super::conn::{is_broken, is_interrupted, Conn, Pool};
use super::deliveries::Id;
use super::scripts::TASK_DONE;
use super::CHUNK;
use crate::error::{Error, Result};

/// Where an acknowledgement goes: the queue's eight keys and key prefix,
/// and the consumer whose items it names.
#[derive(Clone, Copy)]
pub(crate) struct AckTo<'a> {
    pub(crate) keys: &'a [String; 8],
    pub(crate) prefix: &'a str,
    pub(crate) consumer: &'a str,
}

/// Item ids as (request, from, to) triples of index ranges, sorted, each
/// once.
pub(crate) fn triples(ids: &[Id]) -> Vec<(u64, u64, u64)> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.chunk_by(|a, b| a.0 == b.0)
        .flat_map(|group| {
            let seq = group[0].0;
            ranges(group.iter().map(|&(_, i)| i))
                .into_iter()
                .map(move |(from, to)| (seq, from, to))
        })
        .collect()
}

/// Sorted numbers as inclusive ranges of consecutive ones.
fn ranges(sorted: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for n in sorted {
        match out.last_mut() {
            Some((_, to)) if *to + 1 == n => *to = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// What is left of `deadline`, at least a millisecond (a zero socket
/// timeout would mean none).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

impl Pool {
    /// Reads the reply of the acknowledgement sent on `c` without waiting,
    /// if there is one; whether `c` is still usable. If the server lost the
    /// script (a restart), it is loaded and the acknowledgement sent again,
    /// waiting. One that failed (an error, a lost reply: it may not have
    /// run) is owed, and sent again by the handle's heartbeat or its next
    /// `task_done`, `join` or drop (it is idempotent).
    pub(crate) fn settle(&self, c: &mut Conn) -> bool {
        let Some(p) = c.pending.take() else {
            return true;
        };
        let mut r = c.link.recv();
        if r.as_ref().is_err_and(|e| {
            e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript)
        }) {
            r = TASK_DONE
                .load(c.link.as_dyn())
                .and_then(|_| c.link.send_packed(&p.packed))
                .and_then(|()| c.link.recv());
        }
        match r {
            Ok(_) => true,
            Err(e) => {
                self.owe(p.ids);
                !(is_broken(&e) || is_interrupted(&e))
            }
        }
    }

    /// Reads the owed replies of the pooled connections whose
    /// acknowledgement was sent before `sent_before` (each read bounded by
    /// `deadline` too, if given: one not read by then is owed and its
    /// connection dropped): after this, each of them has run or is owed.
    fn settle_sent_before(&self, sent_before: Instant, deadline: Option<Instant>) {
        let taken: Vec<Conn> = {
            let mut pool = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            if pool.0 != std::process::id() {
                return;
            }
            let (due, keep) = std::mem::take(&mut pool.1)
                .into_iter()
                .partition(|c| c.pending.as_ref().is_some_and(|p| p.sent < sent_before));
            pool.1 = keep;
            due
        };
        for mut c in taken {
            if let Some(d) = deadline {
                c.link
                    .set_read_timeout(Some(left(d).min(self.target.io_timeout)));
            }
            if self.settle(&mut c) {
                c.link.set_read_timeout(Some(self.target.io_timeout));
                self.release(c);
            }
        }
    }

    /// Records acknowledgements to send again.
    pub(crate) fn owe(&self, ids: Vec<Id>) {
        self.owed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids);
    }

    /// The acknowledgements owed, taken (the caller sends them or owes them
    /// again).
    pub(crate) fn take_owed(&self) -> Vec<Id> {
        std::mem::take(&mut *self.owed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the replies of acknowledgements sent before `sent_before`,
    /// then sends the owed ones again and waits for that; all of it within
    /// `deadline` if one is given (what is not done by then stays owed).
    /// Run by `join`, `unfinished` and drop (every reply) and by the
    /// heartbeat (those unread for a tick).
    pub(crate) fn flush_owed(
        &self,
        to: AckTo<'_>,
        sent_before: Instant,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let _one = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        self.settle_sent_before(sent_before, deadline);
        let owed = self.take_owed();
        if owed.is_empty() {
            return Ok(());
        }
        self.acknowledge(to, &owed, deadline)
            .inspect_err(|_| self.owe(owed))
    }

    /// Acknowledges items by id in one script call (per [`CHUNK`] ranges),
    /// each request's indexes sent as ranges (a batch is one), waiting for
    /// the reply; idempotent, so a call that fails on a broken connection
    /// is tried once more. With a `deadline`, each reply is waited for
    /// until then at most.
    pub(crate) fn acknowledge(
        &self,
        to: AckTo<'_>,
        ids: &[Id],
        deadline: Option<Instant>,
    ) -> Result<()> {
        let lease_ms = self.target.lease.as_millis() as u64;
        let io_timeout = self.target.io_timeout;
        let triples = triples(ids);
        for chunk in triples.chunks(CHUNK / 3) {
            let mut inv = TASK_DONE.prepare_invoke();
            for k in to.keys {
                inv.key(k);
            }
            inv.arg(to.prefix).arg(to.consumer).arg(lease_ms);
            for (seq, from, to) in chunk {
                inv.arg(*seq).arg(*from).arg(*to);
            }
            let run = || {
                self.with_conn("task_done", deadline, |c| {
                    let Some(d) = deadline else {
                        return inv.invoke::<i64>(c.link.as_dyn());
                    };
                    c.link.set_read_timeout(Some(left(d).min(io_timeout)));
                    let r = inv.invoke::<i64>(c.link.as_dyn());
                    c.link.set_read_timeout(Some(io_timeout));
                    r
                })
            };
            match run() {
                Err(Error::Io { .. }) if deadline.is_none_or(|d| Instant::now() < d) => {
                    run().map(|_| ())?
                }
                other => other.map(|_| ())?,
            }
        }
        // The script is on the server now: later ones need not wait.
        self.acks_loaded
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Sends `cmds` on a connection that owes an acknowledgement's reply,
    /// then reads that reply, then theirs: the acknowledgement costs no
    /// round trip of its own (one server only). `None` if no pooled
    /// connection owes one (the caller runs them as usual). A server error
    /// in one of the replies is returned as the error.
    pub(crate) fn after_pending(&self, cmds: &[&Cmd]) -> Option<RedisResult<Vec<Value>>> {
        if self.target.cluster {
            return None;
        }
        let mut c = {
            let mut pool = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            if pool.0 != std::process::id() {
                return None;
            }
            let i = pool.1.iter().rposition(|c| c.pending.is_some())?;
            pool.1.remove(i)
        };
        let mut packed = Vec::new();
        for cmd in cmds {
            cmd.write_packed_command(&mut packed);
        }
        if let Err(e) = c.link.send_packed(&packed) {
            // Nothing of it was answered: the acknowledgement is owed.
            if let Some(p) = c.pending.take() {
                self.owe(p.ids);
            }
            return Some(Err(e));
        }
        if !self.settle(&mut c) {
            return Some(Err(RedisError::from(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the connection failed while reading an acknowledgement's reply",
            ))));
        }
        let mut out = Vec::with_capacity(cmds.len());
        let mut first_err = None;
        for _ in cmds {
            match c.link.recv() {
                Ok(v) => out.push(v),
                Err(e) if is_broken(&e) || is_interrupted(&e) => return Some(Err(e)),
                Err(e) => {
                    first_err.get_or_insert(e);
                    out.push(Value::Nil);
                }
            }
        }
        self.release(c);
        Some(match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn acknowledged_numbers_go_as_ranges() {
        assert_eq!(super::ranges([]), []);
        assert_eq!(
            super::ranges([3, 4, 5, 7, 9, 10]),
            [(3, 5), (7, 7), (9, 10)]
        );
    }
}
