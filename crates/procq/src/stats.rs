//! [`Stats`]: what a read-out of one queue says, whatever its backend.

use crate::kind::Kind;

/// Everything procq knows about one queue at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Queue name.
    pub name: String,
    /// `Queue` or `JoinableQueue`.
    pub kind: Kind,
    /// Item bound; 0 = unbounded.
    pub maxsize: u64,
    /// Items in the queue.
    pub items: u64,
    /// Tasks put and not yet done (joinable queues; else equals `items`).
    pub unfinished_tasks: u64,
    /// Ring bytes in use (records, headers and padding).
    pub bytes_used: u64,
    /// Current ring size in bytes.
    pub capacity_bytes: u64,
    /// Largest ring size in bytes.
    pub max_capacity_bytes: u64,
    /// Memory actually backing the segment (header included).
    pub resident_bytes: u64,
    /// Live processes attached.
    pub attached_processes: usize,
    /// Dead processes still recorded (reclaimed on the next sweep).
    pub dead_processes: usize,
    /// Whether the queue was shut down ([`Queue::shutdown`](crate::Queue::shutdown)):
    /// it stays so.
    pub shutdown: bool,
    /// Whether the queue outlives its processes.
    pub persistent: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Item type fingerprint (0 = untyped).
    pub fingerprint: u64,
    /// Items put since creation (approximate after a crash: a process
    /// killed right after its commit may not have counted its last item).
    pub items_put: u64,
    /// Items got since creation.
    pub items_got: u64,
    /// Payload bytes put since creation.
    pub bytes_put: u64,
    /// Payload bytes got since creation.
    pub bytes_got: u64,
    /// Puts that had to wait (approximate).
    pub blocked_puts: u64,
    /// Gets that had to wait (approximate).
    pub blocked_gets: u64,
    /// Waits that timed out (approximate).
    pub timeouts: u64,
    /// Lock recoveries after a holder died.
    pub recoveries: u64,
    /// Dead processes whose slots were reclaimed.
    pub reclaimed_processes: u64,
    /// Items handed out by `get` since creation, redeliveries included
    /// (Redis `JoinableQueue`; 0 elsewhere).
    pub deliveries: u64,
    /// Items put back in the queue after their consumer's lease ran out
    /// (Redis `JoinableQueue`; 0 elsewhere).
    pub redeliveries: u64,
    /// Items moved to the dead-letter queue `<name>.dead` after
    /// `max_deliveries` deliveries (Redis `JoinableQueue`; 0 elsewhere).
    pub dead_letters: u64,
    /// The queue's `max_deliveries` (0 = no limit; Redis `JoinableQueue`).
    pub max_deliveries: u64,
}
