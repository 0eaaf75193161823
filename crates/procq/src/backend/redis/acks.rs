//! Acknowledgement on a joinable queue: `task_done` marks done items by
//! their numbers (request, index), chosen for the calling thread by
//! [`deliveries`](super::deliveries), sent as ranges in one script call;
//! `join` and the unfinished-task count.
//!
//! **Acknowledgements do not wait for their reply** (one server; a cluster
//! connection cannot split sending from reading): `task_done` sends the
//! script and returns, so the server runs it at once (a `join` in any
//! process sees it as soon as without this) but the caller does not wait a
//! round trip for the answer, which says only how many were counted. The
//! reply is read by whoever uses that connection next, before anything
//! else (`Pool::conn`, `Pool::settle`); a joinable `get` sends its own
//! request first and then reads both, so a consumer's `get`, `task_done`,
//! `get`… costs one round trip per `get`. Errors a caller must see are
//! local (`TaskDoneTooOften`, from what the handle holds). An
//! acknowledgement whose reply then fails may not have run: it is owed,
//! and the handle's next `task_done`, `join`, `unfinished` or drop sends it
//! again and waits for that (acknowledging is idempotent). `join` and
//! `unfinished` read every owed reply first, so they see this handle's own
//! acknowledgements.

use std::sync::atomic::{AtomicBool, Ordering};

use ::redis::Value;

use super::conn::{int, is_broken};
use super::deliveries::Id;
use super::wait::Token;
use super::{deadline_of, RedisQueue, CHUNK, JOIN, NEVER, TASK_DONE};
use crate::block::Block;
use crate::error::{Error, Result};

/// Item ids as (request, from, to) triples of index ranges, sorted, each
/// once.
fn triples(ids: &[Id]) -> Vec<(u64, u64, u64)> {
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

impl RedisQueue {
    /// Acknowledges `n` items this handle handed out (see [`deliveries`]
    /// for which), in one round trip; [`Error::TaskDoneTooOften`], with
    /// nothing acknowledged, if it holds fewer.
    pub(crate) fn task_done(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let chosen = self.ids().take_for_ack(n).ok_or(Error::TaskDoneTooOften)?;
        let mut ids: Vec<Id> = chosen.iter().map(|&(_, id)| id).collect();
        let mut owed = self.pool.take_owed();
        ids.extend(&owed);
        if self.send_ack(&ids) {
            return Ok(());
        }
        let more = self.pool.take_owed(); // what sending it found owed too
        ids.extend(&more);
        owed.extend(more);
        match self.acknowledge(&ids) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Acknowledging twice counts once: keep them for a retry.
                self.pool.owe(owed);
                self.ids().unacknowledge(chosen);
                Err(e)
            }
        }
    }

    /// Sends the acknowledgement of `ids` without waiting for its reply
    /// (see the module doc); `false` if it could not be sent that way (a
    /// cluster, more than one script call, a connection that failed): the
    /// caller then sends it and waits.
    fn send_ack(&self, ids: &[Id]) -> bool {
        if self.pool.target.cluster || !self.pool.acks_loaded.load(Ordering::Relaxed) {
            return false;
        }
        let triples = triples(ids);
        if triples.len() > CHUNK / 3 {
            return false;
        }
        let consumer = self.ids().consumer.clone();
        let lease_ms = self.pool.target.lease.as_millis() as u64;
        let mut eval = ::redis::cmd("EVALSHA");
        eval.arg(TASK_DONE.get_hash()).arg(self.keys.len());
        for k in &self.keys {
            eval.arg(k);
        }
        eval.arg(&self.prefix).arg(&consumer).arg(lease_ms);
        for (seq, from, to) in &triples {
            eval.arg(*seq).arg(*from).arg(*to);
        }
        let Ok(mut c) = self.pool.conn_unsettled(None) else {
            return false;
        };
        let packed = eval.get_packed_command();
        if let Err(e) = c.link.send_packed(&packed) {
            // The reply owed on it, if any, is lost with it.
            if let Some((old, _)) = c.pending.take() {
                self.pool.owe(old);
            }
            if !is_broken(&e) {
                self.pool.release(c);
            }
            return false;
        }
        // The previous acknowledgement's reply comes first.
        if !self.pool.settle(&mut c) {
            // This one may or may not have run: owed, sent again later.
            self.pool.owe(ids.to_vec());
            return true;
        }
        c.pending = Some((ids.to_vec(), packed));
        self.pool.release(c);
        true
    }

    /// Sends acknowledgements owed (see the module doc) and waits for them,
    /// after reading every reply not read yet.
    pub(super) fn flush_acks(&self) -> Result<()> {
        self.pool.settle_all();
        let owed = self.pool.take_owed();
        if owed.is_empty() {
            return Ok(());
        }
        self.acknowledge(&owed).inspect_err(|_| self.pool.owe(owed))
    }

    /// Acknowledges items by id in one script call (per [`CHUNK`] ranges),
    /// each request's indexes sent as ranges (a batch is one); idempotent,
    /// so a call that fails on a broken connection is tried once more.
    pub(super) fn acknowledge(&self, ids: &[Id]) -> Result<()> {
        let consumer = self.ids().consumer.clone();
        let lease_ms = self.pool.target.lease.as_millis() as u64;
        let triples = triples(ids);
        for chunk in triples.chunks(CHUNK / 3) {
            let run = || {
                self.script::<i64>("task_done", &TASK_DONE, None, |inv| {
                    inv.arg(&consumer).arg(lease_ms);
                    for (seq, from, to) in chunk {
                        inv.arg(*seq).arg(*from).arg(*to);
                    }
                })
            };
            match run() {
                Err(Error::Io { .. }) => run().map(|_| ())?,
                other => other.map(|_| ())?,
            }
        }
        // The script is on the server now: later ones need not wait.
        self.pool.acks_loaded.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until no task is outstanding; [`Error::Full`] when `block` runs out.
    pub(crate) fn join(&self, block: Block) -> Result<()> {
        self.join_until(block, &NEVER)
    }

    /// [`join`](Self::join) that gives up (with [`Error::Full`]) before
    /// its next look once `stop` is set.
    pub(crate) fn join_until(&self, block: Block, stop: &AtomicBool) -> Result<()> {
        self.flush_acks()?;
        loop {
            self.check_open()?;
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Full);
            }
            let reply: Vec<Value> = self.script("join", &JOIN, deadline_of(block), |_| {})?;
            if reply.first().map_or(0, int) == 1 {
                return Ok(());
            }
            let hint = reply.get(1).map_or(-1, int);
            if !self.wait(Token::Zero, block, hint, stop)? {
                return Err(Error::Full);
            }
        }
    }

    /// Tasks put and not yet acknowledged.
    pub(crate) fn unfinished(&self) -> Result<u64> {
        self.flush_acks()?;
        let key = &self.keys[1];
        self.pool
            .with_conn("HGET", None, |c| {
                ::redis::cmd("HGET")
                    .arg(key)
                    .arg("unfinished")
                    .query::<Option<i64>>(c.link.as_dyn())
            })
            .map(|v| v.unwrap_or(0).max(0) as u64)
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
