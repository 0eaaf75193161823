//! Landing lists: how a plain queue's `get` survives a lost reply.
//!
//! A plain `Queue`'s get does not pop items (a popped item whose reply never
//! reaches the client is gone: a reset, a timeout, or a consumer stopped with
//! SIGSTOP and continued while blocked, whose socket read then fails with
//! `EINTR`). It *moves* them, atomically, into a list of the caller's own —
//! `BLMOVE items <landing> LEFT RIGHT` for one item, the get script
//! (`RENAME` or `SORT … STORE`) for a batch — and reads them from the reply,
//! or, when the reply was lost, with an `LRANGE` of that list. Items leave
//! the landing list only when the client knows it has them: the next move
//! of the same [`Landing`] deletes the lists whose items were handed out,
//! in the same round trip (a `DEL` pipelined before the `BLMOVE`, or inside
//! the script), so the steady state costs no extra round trip.
//!
//! Every move goes to a **fresh key** (`<prefix>:landing:<handle>:<slot>:<n>`,
//! `n` never reused), so there is never a doubt about what a list holds: a
//! list whose reply was received holds items handed out (*spent*), a list
//! whose reply was lost holds the items that move took, or nothing if it
//! never ran. A move that runs twice (a retry after an interrupted call)
//! finds its list already filled and answers with the same items
//! (`get.lua`), so a retry never takes more.
//!
//! A handle keeps one landing per thread blocked in it at once (threads
//! sharing a handle never touch each other's lists). Dropping the handle
//! deletes the spent lists and puts a lost move's items back at the head
//! of the queue. Every landing list expires [`TTL`] after its move, so a
//! consumer that dies leaves no key behind for long; the items of a move
//! whose reply it never read go with it (a plain queue is at-most-once when
//! a consumer dies, as on shared memory and in `multiprocessing.Queue`). A
//! live consumer stopped (SIGSTOP, Ctrl-Z, a debugger) for less than the
//! TTL loses nothing: its next get re-reads the list.

use super::deliveries::unique_id;

/// How long a landing list lives after its move: the longest a consumer may
/// stay stopped between a move and reading its items (far longer than any
/// reply takes), and how long a dead consumer's last items keep a key.
pub(crate) const TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// One landing (used by one call at a time): its key names and what they
/// hold.
pub(crate) struct Landing {
    /// `<prefix>:landing:<handle id>:<slot>:`; each move appends a new number.
    base: String,
    /// The number of the last move.
    moves: u64,
    /// Lists whose items were handed out (or that are empty): the next move
    /// deletes them. Kept until a reply confirms it did.
    pub(crate) spent: Vec<String>,
    /// The list of a move whose reply was lost: it holds the items that
    /// move took (none if it never ran), not handed out yet.
    pub(crate) lost: Option<String>,
}

impl Landing {
    /// A new, never used key for the next move.
    pub(crate) fn next_key(&mut self) -> String {
        self.moves += 1;
        format!("{}{}", self.base, self.moves)
    }

    /// Records that the reply of a move into `key` arrived: the spent
    /// lists are deleted, and `key` holds the items handed out (if any).
    pub(crate) fn arrived(&mut self, key: String, any: bool) {
        self.spent.clear();
        if any {
            self.spent.push(key);
        }
    }

    /// Records that the reply of a move into `key` was lost: `key` holds
    /// the items that move took, if it ran (whether it deleted the spent
    /// lists is unknown, so they stay spent).
    pub(crate) fn lost(&mut self, key: String) {
        self.lost = Some(key);
    }

    /// Whether the server may hold anything of this landing.
    pub(crate) fn is_clear(&self) -> bool {
        self.spent.is_empty() && self.lost.is_none()
    }
}

/// A handle's landings: free ones are reused, so a handle used by one
/// thread has one.
pub(crate) struct Landings {
    /// The process they belong to: a forked child starts afresh (its
    /// parent settles its own).
    pid: u32,
    /// Unique per handle and process.
    id: String,
    /// Landings made so far (the slot number of the next one).
    made: u32,
    free: Vec<Landing>,
}

impl Landings {
    pub(crate) fn new() -> Landings {
        Landings {
            pid: std::process::id(),
            id: unique_id(),
            made: 0,
            free: Vec::new(),
        }
    }

    /// A landing for one call on the queue whose key prefix is `prefix`.
    pub(crate) fn acquire(&mut self, prefix: &str) -> Landing {
        if self.pid != std::process::id() {
            *self = Landings::new();
        }
        if let Some(l) = self.free.pop() {
            return l;
        }
        self.made += 1;
        Landing {
            base: format!("{prefix}:landing:{}:{}:", self.id, self.made),
            moves: 0,
            spent: Vec::new(),
            lost: None,
        }
    }

    /// Gives a landing back after its call.
    pub(crate) fn release(&mut self, l: Landing) {
        if self.pid == std::process::id() {
            self.free.push(l);
        }
    }

    /// Whether they belong to this process (not a forked child's copy).
    pub(crate) fn is_ours(&self) -> bool {
        self.pid == std::process::id()
    }

    /// The landings that hold something on the server (for the handle's
    /// drop), none in a forked child.
    pub(crate) fn take_all(&mut self) -> Vec<Landing> {
        if self.pid != std::process::id() {
            return Vec::new();
        }
        std::mem::take(&mut self.free)
            .into_iter()
            .filter(|l| !l.is_clear())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_gets_a_fresh_key_and_spent_lists_wait_for_a_reply() {
        let mut ls = Landings::new();
        let mut a = ls.acquire("procq:{q}");
        let b = ls.acquire("procq:{q}");
        let k1 = a.next_key();
        let k2 = a.next_key();
        assert_ne!(k1, k2);
        assert!(k1.starts_with("procq:{q}:landing:"));
        assert_ne!(a.base, b.base, "two landings of one handle share keys");
        a.arrived(k1.clone(), true);
        assert_eq!(a.spent, std::slice::from_ref(&k1));
        a.lost(k2.clone());
        assert_eq!(a.spent, [k1], "a lost move deleted nothing for sure");
        assert_eq!(a.lost, Some(k2));
        ls.release(a);
        ls.release(b);
        assert_eq!(ls.take_all().len(), 1);
        let mut c = ls.acquire("procq:{q}");
        let k = c.next_key();
        c.arrived(k, false);
        assert!(c.is_clear(), "an empty move left a list to delete");
    }
}
