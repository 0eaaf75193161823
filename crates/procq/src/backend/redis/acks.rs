//! Acknowledgement on a joinable queue: `task_done` marks done items by
//! their numbers (request, index), chosen for the calling thread by
//! [`deliveries`](super::deliveries), sent as ranges in one script call;
//! `join` and the unfinished-task count.

use std::sync::atomic::{AtomicBool, Ordering};

use ::redis::Value;

use super::conn::int;
use super::deliveries::Id;
use super::wait::Token;
use super::{deadline_of, RedisQueue, CHUNK, JOIN, NEVER, TASK_DONE};
use crate::block::Block;
use crate::error::{Error, Result};

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
        let ids: Vec<Id> = chosen.iter().map(|&(_, id)| id).collect();
        match self.acknowledge(&ids) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Acknowledging twice counts once: keep them for a retry.
                self.ids().unacknowledge(chosen);
                Err(e)
            }
        }
    }

    /// Acknowledges items by id in one script call (per [`CHUNK`] ranges),
    /// each request's indexes sent as ranges (a batch is one); idempotent,
    /// so a call that fails on a broken connection is tried once more.
    pub(super) fn acknowledge(&self, ids: &[Id]) -> Result<()> {
        let consumer = self.ids().consumer.clone();
        let lease_ms = self.pool.target.lease.as_millis() as u64;
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let triples: Vec<(u64, u64, u64)> = ids
            .chunk_by(|a, b| a.0 == b.0)
            .flat_map(|group| {
                let seq = group[0].0;
                ranges(group.iter().map(|&(_, i)| i))
                    .into_iter()
                    .map(move |(from, to)| (seq, from, to))
            })
            .collect();
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
        Ok(())
    }

    /// Waits until no task is outstanding; [`Error::Full`] when `block` runs out.
    pub(crate) fn join(&self, block: Block) -> Result<()> {
        self.join_until(block, &NEVER)
    }

    /// [`join`](Self::join) that gives up (with [`Error::Full`]) before
    /// its next look once `stop` is set.
    pub(crate) fn join_until(&self, block: Block, stop: &AtomicBool) -> Result<()> {
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
