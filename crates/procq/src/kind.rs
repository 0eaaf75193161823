//! [`Kind`]: which API created a queue. Every backend records it.

/// Which API created the queue: a plain [`Queue`](crate::Queue) or a
/// [`JoinableQueue`](crate::JoinableQueue). A joinable queue counts
/// unfinished tasks; any handle may use either kind, but
/// [`JoinableQueue::open`](crate::JoinableQueue::open) insists on a
/// joinable one.
///
/// ```
/// let q = procq::JoinableQueue::<u8>::new(0)?;
/// assert_eq!(q.stats()?.kind, procq::Kind::Joinable);
/// # Ok::<(), procq::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// A plain [`Queue`](crate::Queue).
    Queue = 1,
    /// A [`JoinableQueue`](crate::JoinableQueue) with task accounting.
    Joinable = 2,
}

impl Kind {
    /// The kind stored as `v` (its `repr`), if `v` is one.
    pub(crate) fn from_raw(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Queue),
            2 => Some(Kind::Joinable),
            _ => None,
        }
    }
}
