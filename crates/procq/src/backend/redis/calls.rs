//! The async calls on a Redis queue (`get_async`, `put_async`,
//! `join_async`): each pending call runs the blocking call on a thread of
//! its own, and the future's poll only looks at the outcome, so no Redis
//! round trip ever runs on an executor's thread, under any executor. A
//! thread per pending call costs tens of microseconds to start, about one
//! round trip on a local server; it needs no runtime, no pool to size, and
//! nothing to redo after `fork`.
//!
//! **Cancellation.** A [`Call`] dropped before it completed (a timeout, a
//! lost `select!` branch, a cancelled task) sets its stop flag: the worker
//! makes no new attempt after the one under way (it waits in slices of
//! [`STOPPABLE_SLICE`](super::wait::STOPPABLE_SLICE), so it gives up
//! within a quarter of a second). What that last attempt did is kept,
//! never lost:
//! - a get that took items gives them back ([`RedisQueue::give_back`]):
//!   a plain queue's go back to the head of the queue (`unget.lua`; a
//!   bounded queue may briefly hold that many more than its maxsize), a
//!   joinable queue's stay in flight with this handle, which hands them
//!   out to its next get (or, if none comes, they are redelivered once its
//!   lease runs out);
//! - a put whose script ran put its item: it is in the queue, as if the
//!   future had completed;
//! - a join has nothing to undo.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::deliveries::Id;
use super::RedisQueue;
use crate::block::Block;
use crate::error::{Error, Result};

/// What a finished call did.
pub(crate) enum Outcome {
    /// A get took these items (not handed out yet: the poll does that, on
    /// the caller's thread, as the blocking `get` would).
    Taken(Vec<(Id, Vec<u8>)>),
    /// A put put its item.
    Put,
    /// A join saw every task done.
    Joined,
}

/// What the worker and the future share.
struct Slot {
    state: Mutex<State>,
    /// Set when the future is dropped: the worker makes no new attempt.
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    outcome: Option<Result<Outcome>>,
    waker: Option<Waker>,
    /// The future was dropped: the worker gives back what it took.
    gone: bool,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pending async call on a Redis queue: the future's half.
pub(crate) struct Call {
    slot: Arc<Slot>,
    queue: Arc<RedisQueue>,
}

/// The operation a [`Call`] runs.
pub(crate) enum Op {
    Get { max: usize },
    Put { item: Vec<u8> },
    Join,
}

impl Call {
    /// Starts `op` on a thread of its own, waiting as `block` allows.
    pub(crate) fn start(queue: &Arc<RedisQueue>, op: Op, block: Block) -> Result<Call> {
        let slot = Arc::new(Slot {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        });
        let (q, s) = (queue.clone(), slot.clone());
        std::thread::Builder::new()
            .name("procq-redis-call".into())
            .spawn(move || {
                let outcome = match op {
                    Op::Get { max } => q.take(max, block, &s.stop).map(Outcome::Taken),
                    Op::Put { item } => q
                        .put_until(&[item.as_slice()], block, &s.stop)
                        .map(|_| Outcome::Put),
                    Op::Join => q.join_until(block, &s.stop).map(|()| Outcome::Joined),
                };
                let mut st = s.state();
                if st.gone {
                    drop(st);
                    if let Ok(Outcome::Taken(items)) = outcome {
                        q.give_back(items);
                    }
                    return;
                }
                st.outcome = Some(outcome);
                let waker = st.waker.take();
                drop(st);
                if let Some(w) = waker {
                    w.wake();
                }
            })
            .map_err(|e| Error::io("start a thread for an async call on Redis", e))?;
        Ok(Call {
            slot,
            queue: queue.clone(),
        })
    }

    /// The outcome once the worker has it; else registers the waker.
    pub(crate) fn poll(&self, cx: &Context<'_>) -> Poll<Result<Outcome>> {
        let mut st = self.slot.state();
        if let Some(outcome) = st.outcome.take() {
            return Poll::Ready(outcome);
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.slot.stop.store(true, Ordering::Relaxed);
        let left = {
            let mut st = self.slot.state();
            st.gone = true;
            st.waker = None;
            st.outcome.take()
        };
        // Finished but never polled since: what it took goes back, from
        // a thread of its own too (this may run on an executor's thread).
        if let Some(Ok(Outcome::Taken(items))) = left {
            let q = self.queue.clone();
            let back = Arc::new(Mutex::new(Some(items)));
            let mine = back.clone();
            let spawned = std::thread::Builder::new()
                .name("procq-redis-give-back".into())
                .spawn(move || {
                    if let Some(items) = mine.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        q.give_back(items);
                    }
                });
            if spawned.is_err() {
                if let Some(items) = back.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    self.queue.give_back(items);
                }
            }
        }
    }
}
