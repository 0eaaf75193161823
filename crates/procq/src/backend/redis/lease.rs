//! The heartbeat: a thread that renews a live consumer's lease, so that its
//! items come back to the queue when its process dies (or drops the
//! handle), not when a task merely takes longer than the lease. At every
//! tick it also runs a task of the handle's: sending acknowledgements owed
//! (see `owed.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::{RedisError, Script};

use super::conn::{Connector, Link};

/// The heartbeat's lease renewal (takes only the leases key).
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("renew.lua")));

/// Control block of a heartbeat thread.
pub(crate) struct Heartbeat {
    /// Set when the handle is dropped; the thread exits at its next tick.
    stop: AtomicBool,
    /// The thread, to wake it early on stop.
    thread: std::thread::Thread,
}

impl Heartbeat {
    /// How often a heartbeat renews a lease of `lease`: every third of it.
    pub(crate) fn interval(lease: Duration) -> Duration {
        (lease / 3).max(Duration::from_millis(10))
    }

    /// Starts a thread renewing `consumer`'s lease in `leases` every
    /// `interval`, and running `also` after each renewal. `None` if no
    /// thread could be started: the lease is then not renewed, so nothing
    /// is lost, and a slow task may be delivered twice.
    pub(crate) fn start(
        connector: Connector,
        leases: String,
        consumer: String,
        (lease, interval): (Duration, Duration),
        io_timeout: Duration,
        also: Box<dyn Fn() + Send>,
    ) -> Option<Arc<Heartbeat>> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Heartbeat>>(1);
        let handle = std::thread::Builder::new()
            .name("procq-redis-heartbeat".into())
            .spawn(move || {
                let Ok(me) = rx.recv() else { return };
                let mut link: Option<Link> = None;
                loop {
                    std::thread::park_timeout(interval);
                    if me.stop.load(Ordering::Acquire) {
                        return;
                    }
                    if link.is_none() {
                        link = connector.connect(io_timeout, io_timeout).ok();
                    }
                    if let Some(l) = link.as_mut() {
                        let renewed: Result<i64, RedisError> = RENEW
                            .key(&leases)
                            .arg(&consumer)
                            .arg(lease.as_millis() as u64)
                            .invoke(l.as_dyn());
                        if renewed.is_err() {
                            // Reconnect at the next tick; a lease renewed
                            // late is still renewed.
                            link = None;
                        }
                    }
                    also();
                }
            })
            .ok()?;
        let beat = Arc::new(Heartbeat {
            stop: AtomicBool::new(false),
            thread: handle.thread().clone(),
        });
        let _ = tx.send(beat.clone());
        Some(beat)
    }

    /// Stops the thread (at once if it sleeps).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}
