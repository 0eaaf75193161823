//! A process killed in the middle of a commit (see `Header::commit` in
//! `backend/shm/layout.rs`): the new state goes into the killed process's
//! scratch cell, `current` names it, then into the committed cell in the
//! lock's cache line, and `current` names that. A kill after any number of
//! those stores must leave the state before the operation (up to the first
//! switch of `current`) or after it (from then on), never a mix, and the
//! next process to take the lock must finish the commit and go on.
//!
//! `procq::__fuzzing::kill_mid_commit(n)` makes the child SIGKILL itself
//! after exactly `n` stores of its next commit, holding the lock, so every
//! window is hit exactly (the random kills are in `crash.rs`); after all
//! of them (`n = COMMIT_STORES`), it dies before the journal entry the
//! commit carries (a joinable get's task count) is applied, which recovery
//! must then replay.

mod common;

use common::Reaped;
use std::time::Duration;

use procq::__fuzzing::{kill_mid_commit, COMMIT_STORES};
use procq::{Builder, RawQueue};

const LIMIT: Duration = Duration::from_secs(60);

/// Stores after which the first step of a commit is done: the scratch
/// cell's words, then `current` (the state is the new one from here on).
const SWITCHED: usize = COMMIT_STORES / 2;

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    let q = RawQueue::open(&args[0]).unwrap();
    let stores: usize = args[1].parse().unwrap();
    kill_mid_commit(stores);
    match role.as_str() {
        "put" => {
            let _ = q.put(b"new");
        }
        // A get of a small item takes the fast path (see
        // `backend/shm/fast.rs`), a joinable one's with the journal entry
        // of its task count in the commit, applied after it: both commit
        // through `Header::commit_words`, store for store, as the general
        // path does.
        "get" | "get-plain" => {
            let _ = q.get();
        }
        // Two items at once: the general path, journal and all.
        "get-many" => {
            let _ = q.get_many(2);
        }
        other => panic!("unknown role {other}"),
    }
    unreachable!("the commit should have killed this process");
}

/// Removes the queue when dropped, also when an assertion failed.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = procq::remove(&self.0);
    }
}

fn drain(q: &RawQueue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(item) = q.get_nowait() {
        out.push(item);
    }
    out
}

/// Runs `role` in a child killed after `stores` stores of its commit and
/// waits for it to die of SIGKILL.
fn killed(role: &str, name: &str, stores: usize) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Reaped(common::spawn(role, &[name, &stores.to_string()]));
    let status = common::wait(&mut child.0, LIMIT);
    assert_eq!(
        status.signal(),
        Some(9),
        "{role} after {stores} stores: {status}"
    );
}

#[test]
fn a_put_killed_after_each_store_of_its_commit_is_all_or_nothing() {
    for stores in 1..=COMMIT_STORES {
        let name = common::unique(&format!("commit-put-{stores}"));
        let _cleanup = Cleanup(name.clone());
        let q = Builder::new().name(&name).build_raw().unwrap();
        for item in [b"a", b"b"] {
            q.put(item).unwrap();
        }
        killed("put", &name, stores);
        let mut want: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec()];
        if stores >= SWITCHED {
            want.push(b"new".to_vec());
        }
        assert_eq!(q.qsize(), want.len(), "after {stores} stores");
        assert_eq!(drain(&q), want, "after {stores} stores");
        // The queue goes on working, and the recovery was counted.
        q.put(b"c").unwrap();
        assert_eq!(q.get_timeout(LIMIT).unwrap(), b"c");
        assert!(q.stats().unwrap().recoveries >= 1, "after {stores} stores");
    }
}

/// A joinable queue of three items, its getter (`role`, taking `took`
/// items in one commit) killed after each store of the commit: the
/// items are got (and written off as tasks) or still there, all or none.
/// The commit carries a journal entry (the getter's count of taken
/// tasks), which recovery must replay before it writes off the dead
/// getter's tasks.
fn joinable_getter_killed(role: &str, took: usize) {
    let items: [&[u8]; 3] = [b"a", b"b", b"c"];
    for stores in 1..=COMMIT_STORES {
        let name = common::unique(&format!("commit-{role}-{stores}"));
        let _cleanup = Cleanup(name.clone());
        let q = Builder::new().name(&name).build_raw_joinable().unwrap();
        for item in items {
            q.put(item).unwrap();
        }
        killed(role, &name, stores);
        let gone = if stores >= SWITCHED { took } else { 0 };
        assert_eq!(
            q.unfinished_tasks().unwrap(),
            (items.len() - gone) as u64,
            "{role} after {stores} stores"
        );
        let got = drain(&q);
        assert_eq!(got, items[gone..], "{role} after {stores} stores");
        q.task_done_many(got.len()).unwrap();
        q.join_timeout(LIMIT).unwrap();
        assert_eq!(q.unfinished_tasks().unwrap(), 0);
    }
}

#[test]
fn a_get_killed_after_each_store_of_its_commit_is_all_or_nothing() {
    joinable_getter_killed("get", 1);
}

#[test]
fn a_joinable_get_many_killed_after_each_store_of_its_commit_is_all_or_nothing() {
    // The general pop's commit (a batch never takes the fast path), with
    // the journal entry of the getter's two tasks.
    joinable_getter_killed("get-many", 2);
}

#[test]
fn a_plain_get_killed_after_each_store_of_its_commit_is_all_or_nothing() {
    for stores in 1..=COMMIT_STORES {
        let name = common::unique(&format!("commit-get-plain-{stores}"));
        let _cleanup = Cleanup(name.clone());
        let q = Builder::new().name(&name).build_raw().unwrap();
        for item in [b"a", b"b", b"c"] {
            q.put(item).unwrap();
        }
        killed("get-plain", &name, stores);
        let want: Vec<Vec<u8>> = if stores >= SWITCHED {
            vec![b"b".to_vec(), b"c".to_vec()]
        } else {
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        };
        assert_eq!(q.qsize(), want.len(), "after {stores} stores");
        assert_eq!(drain(&q), want, "after {stores} stores");
        q.put(b"d").unwrap();
        assert_eq!(q.get_timeout(LIMIT).unwrap(), b"d");
        assert!(q.stats().unwrap().recoveries >= 1, "after {stores} stores");
    }
}
