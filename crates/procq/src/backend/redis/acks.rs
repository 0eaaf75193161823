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
//! and the handle's heartbeat (within two ticks of the lease, however long
//! the consumer then idles) or its next `task_done`, `join`, `unfinished`
//! or drop sends it again and waits for that (acknowledging is
//! idempotent; see `owed.rs`). `join` and `unfinished` read every owed
//! reply first, so they see this handle's own acknowledgements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::Value;

use super::conn::{int, is_broken, Pending};
use super::deliveries::Id;
use super::owed::{triples, AckTo};
use super::wait::Token;
use super::{deadline_of, RedisQueue, CHUNK, JOIN, NEVER, TASK_DONE};
use crate::block::Block;
use crate::error::{Error, Result};

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
            if let Some(p) = c.pending.take() {
                self.pool.owe(p.ids);
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
        c.pending = Some(Pending {
            ids: ids.to_vec(),
            packed,
            sent: Instant::now(),
        });
        self.pool.release(c);
        true
    }

    /// Reads every reply not read yet, then sends the acknowledgements
    /// owed (see the module doc) and waits for them; within `deadline` if
    /// one is given.
    pub(super) fn flush_acks(&self, deadline: Option<Instant>) -> Result<()> {
        let consumer = self.ids().consumer.clone();
        let to = AckTo {
            keys: &self.keys,
            prefix: &self.prefix,
            consumer: &consumer,
        };
        self.pool.flush_owed(to, Instant::now(), deadline)
    }

    /// Acknowledges items by id and waits for the reply (`Pool::acknowledge`
    /// in `owed.rs`).
    pub(super) fn acknowledge(&self, ids: &[Id]) -> Result<()> {
        let consumer = self.ids().consumer.clone();
        let to = AckTo {
            keys: &self.keys,
            prefix: &self.prefix,
            consumer: &consumer,
        };
        self.pool.acknowledge(to, ids, None)
    }

    /// What this handle's heartbeat runs after renewing the lease of
    /// `consumer` at every tick (`interval` apart): the replies of
    /// acknowledgements sent without waiting and still unread a tick later
    /// are read, and the owed ones sent again (see `owed.rs`), so that a
    /// consumer that idles after its last `task_done` does not keep a
    /// `join()` elsewhere waiting. Holds the pool weakly: nothing once the
    /// handle is gone.
    pub(super) fn owed_acks_sender(
        &self,
        consumer: &str,
        interval: Duration,
    ) -> Box<dyn Fn() + Send> {
        let pool = Arc::downgrade(&self.pool);
        let (keys, prefix, consumer) =
            (self.keys.clone(), self.prefix.clone(), consumer.to_owned());
        let io_timeout = self.pool.target.io_timeout;
        Box::new(move || {
            let Some(pool) = pool.upgrade() else { return };
            let now = Instant::now();
            let Some(sent_before) = now.checked_sub(interval) else {
                return;
            };
            let to = AckTo {
                keys: &keys,
                prefix: &prefix,
                consumer: &consumer,
            };
            let _ = pool.flush_owed(to, sent_before, Some(now + io_timeout));
        })
    }

    /// Waits until no task is outstanding; [`Error::Full`] when `block` runs out.
    pub(crate) fn join(&self, block: Block) -> Result<()> {
        self.join_until(block, &NEVER)
    }

    /// [`join`](Self::join) that gives up (with [`Error::Full`]) before
    /// its next look once `stop` is set.
    pub(crate) fn join_until(&self, block: Block, stop: &AtomicBool) -> Result<()> {
        self.flush_acks(None)?;
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
        self.flush_acks(None)?;
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
