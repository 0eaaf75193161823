//! Who may use a queue, and which queue a name means.
//!
//! - A queue is shared by the processes of one user: a segment owned by
//!   another uid, open to group or others, or reached through a symbolic
//!   link is refused by every path that opens one (`open`,
//!   `open_or_create`, `stats`, `remove`, `collect_garbage`), even for root.
//! - Names are recycled: after `remove` and a new queue under the same name,
//!   the old queue's last holder must not delete the new one.
//!
//! Roles run in child processes (this binary re-executed); they talk to the
//! test over stdin/stdout: a role prints `ready` once set up, then waits for
//! its stdin to close.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

use procq::{Error, Queue};

const LIMIT: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;

fn path(name: &str) -> String {
    format!("/dev/shm/procq-{name}")
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    let wait_for_stdin_eof = || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    };
    match role.as_str() {
        // Creates a queue with one item, hands its file to uid 65534 with
        // mode 0666 (what another user's `procq put --create` followed by a
        // chmod would leave), then holds it.
        "foreign" => {
            let q = procq::Builder::new()
                .name(&args[0])
                .build::<String>()
                .unwrap();
            q.put(&"theirs".to_owned()).unwrap();
            std::os::unix::fs::chown(path(&args[0]), Some(NOBODY), Some(NOBODY)).unwrap();
            std::fs::set_permissions(path(&args[0]), std::fs::Permissions::from_mode(0o666))
                .unwrap();
            println!("ready");
            wait_for_stdin_eof();
            // Nothing was taken from or added to it by the refused opens.
            assert_eq!(q.qsize(), 1);
            assert_eq!(q.get_nowait().unwrap(), "theirs");
            assert!(matches!(q.get_nowait(), Err(Error::Empty)));
        }
        // Creates a queue, puts the given items, holds it.
        "holder" => {
            let q = procq::Builder::new()
                .name(&args[0])
                .build::<String>()
                .unwrap();
            for item in &args[1..] {
                q.put(item).unwrap();
            }
            println!("ready");
            wait_for_stdin_eof();
        }
        other => panic!("unknown role {other}"),
    }
}

/// A role in a child, with a pipe to tell it when to finish.
struct Role {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Drains the rest of the child's stdout (libtest's summary must not
    /// hit a closed pipe).
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Role {
    fn start(role: &str, args: &[&str]) -> Role {
        let mut child = common::role_command(role, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // libtest prints its header first; wait for the role's line.
        loop {
            match lines.next() {
                Some(Ok(line)) if line.trim() == "ready" => break,
                Some(Ok(_)) => {}
                _ => {
                    let status = child.wait().unwrap();
                    panic!("role {role} ended before it was ready: {status}");
                }
            }
        }
        let drain = std::thread::spawn(move || lines.for_each(drop));
        Role {
            child,
            stdin,
            drain: Some(drain),
        }
    }

    /// Lets the role finish and checks that it succeeded.
    fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        common::wait_ok(&mut self.child, LIMIT);
        if let Some(d) = self.drain.take() {
            d.join().unwrap();
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(d) = self.drain.take() {
            d.join().unwrap();
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn expect_denied<T: std::fmt::Debug>(what: &str, r: procq::Result<T>, needle: &str) {
    match r {
        Err(Error::PermissionDenied { reason, .. }) => {
            assert!(reason.contains(needle), "{what}: {reason}")
        }
        other => panic!("{what}: expected PermissionDenied ({needle}), got {other:?}"),
    }
}

fn identity(name: &str) -> (u64, u64, u32) {
    let m = std::fs::symlink_metadata(path(name)).unwrap();
    (m.dev(), m.ino(), m.uid())
}

#[test]
fn another_users_queue_is_refused_by_every_path() {
    if !is_root() {
        eprintln!("skipped: needs root to give a segment to another uid (CI runs as root)");
        return;
    }
    let name = common::unique("foreign");
    let role = Role::start("foreign", &[&name]);
    let before = identity(&name);
    assert_eq!(before.2, NOBODY);
    let owner = format!("owned by uid {NOBODY}");
    expect_denied("open", Queue::<String>::open(&name), &owner);
    expect_denied("raw open", procq::RawQueue::open(&name), &owner);
    expect_denied(
        "open_or_create",
        Queue::<String>::open_or_create(&name, 0),
        &owner,
    );
    expect_denied("stats", procq::stats(&name), &owner);
    expect_denied("remove", procq::remove(&name), &owner);
    assert!(
        !procq::collect_garbage().unwrap().contains(&name),
        "gc skips it"
    );
    // Listed (it is there), never removed or replaced.
    assert!(procq::list().unwrap().contains(&name));
    assert_eq!(identity(&name), before, "neither removed nor re-created");
    // The owner's item is untouched and nothing was added (checked there).
    role.finish();
    assert!(!common::segment_exists(&name), "its owner removed it");
}

#[test]
fn gc_leaves_an_orphaned_foreign_queue_alone() {
    if !is_root() {
        eprintln!("skipped: needs root to give a segment to another uid (CI runs as root)");
        return;
    }
    let name = common::unique("foreign-orphan");
    let role = Role::start("foreign", &[&name]);
    // Its only user dies: if it were ours, gc would remove it now.
    role.kill();
    let before = identity(&name);
    let removed = procq::collect_garbage().unwrap();
    assert!(!removed.contains(&name), "{removed:?}");
    assert_eq!(identity(&name), before);
    expect_denied("stats", procq::stats(&name), "owned by uid");
    std::fs::remove_file(path(&name)).unwrap();
}

#[test]
fn group_or_world_access_and_other_file_types_are_refused() {
    // Our own uid, but readable by others: someone else may have written it.
    let name = common::unique("mode");
    let q = procq::Builder::new().name(&name).build::<u8>().unwrap();
    q.put(&1).unwrap();
    std::fs::set_permissions(path(&name), std::fs::Permissions::from_mode(0o640)).unwrap();
    expect_denied("stats", procq::stats(&name), "mode 0640");
    expect_denied("remove", procq::remove(&name), "mode 0640");
    std::fs::set_permissions(path(&name), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(procq::stats(&name).unwrap().items, 1);
    drop(q);
    assert!(!common::segment_exists(&name));

    // A second name for a queue's file (a hard link): refused under both.
    let name = common::unique("hardlink");
    let q = procq::Builder::new().name(&name).build::<u8>().unwrap();
    let link = common::unique("hardlink-2");
    std::fs::hard_link(path(&name), path(&link)).unwrap();
    expect_denied("link", procq::stats(&link), "2 names");
    expect_denied("original", procq::stats(&name), "2 names");
    std::fs::remove_file(path(&link)).unwrap();
    assert_eq!(procq::stats(&name).unwrap().items, 0);
    drop(q);
    assert!(!common::segment_exists(&name));

    // A directory and a FIFO under a queue name: refused, never opened.
    let dir = common::unique("dir");
    std::fs::create_dir(path(&dir)).unwrap();
    expect_denied("dir", procq::stats(&dir), "not a regular file");
    std::fs::remove_dir(path(&dir)).unwrap();
    let fifo = common::unique("fifo");
    let c = std::ffi::CString::new(path(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    expect_denied("fifo", Queue::<u8>::open(&fifo), "not a regular file");
    std::fs::remove_file(path(&fifo)).unwrap();
}

#[test]
fn a_symlink_to_a_queue_is_never_followed() {
    let target = common::unique("link-target");
    let role = Role::start("holder", &[&target, "one", "two"]);
    let link = common::unique("link");
    std::os::unix::fs::symlink(path(&target), path(&link)).unwrap();
    let symlink = "symbolic link";
    expect_denied("open", Queue::<String>::open(&link), symlink);
    expect_denied(
        "open_or_create",
        Queue::<String>::open_or_create(&link, 0),
        symlink,
    );
    expect_denied("stats", procq::stats(&link), symlink);
    // `procq rm link` must not mark the target removed.
    expect_denied("remove", procq::remove(&link), symlink);
    assert!(!procq::collect_garbage().unwrap().contains(&link));
    assert!(std::fs::symlink_metadata(path(&link))
        .unwrap()
        .file_type()
        .is_symlink());
    // The target is untouched and still reachable by its own name.
    let q = Queue::<String>::open(&target).unwrap();
    assert_eq!(q.get_nowait().unwrap(), "one");
    assert_eq!(procq::stats(&target).unwrap().items, 1);
    std::fs::remove_file(path(&link)).unwrap();
    drop(q);
    role.finish();
    assert!(!common::segment_exists(&target));
}

#[test]
fn removing_and_recreating_a_name_never_deletes_the_new_queue() {
    let name = common::unique("recreate");
    // A holds the old queue.
    let a = Role::start("holder", &[&name, "old"]);
    let old = identity(&name);
    procq::remove(&name).unwrap();
    assert!(!common::segment_exists(&name));
    // B creates a new queue under the same name and puts items.
    let b = Role::start("holder", &[&name, "new-1", "new-2"]);
    let new = identity(&name);
    assert_ne!((old.0, old.1), (new.0, new.1), "a new file");
    // A's last handle goes away: it must leave B's name alone.
    a.finish();
    assert_eq!(identity(&name), new, "the new queue survived A's exit");
    // A new opener reaches B's queue, with B's items.
    let q = Queue::<String>::open(&name).unwrap();
    assert_eq!(q.get_nowait().unwrap(), "new-1");
    assert_eq!(q.get_nowait().unwrap(), "new-2");
    // Removing after removing: the name is the new queue's now.
    drop(q);
    b.finish();
    assert!(
        !common::segment_exists(&name),
        "B, the last one out, removed it"
    );
}

#[test]
fn gc_of_a_removed_queue_never_deletes_its_successor() {
    let name = common::unique("recreate-gc");
    // A holds the old queue and dies without cleaning up.
    let a = Role::start("holder", &[&name, "old"]);
    procq::remove(&name).unwrap();
    let b = Role::start("holder", &[&name, "new"]);
    let new = identity(&name);
    a.kill();
    // gc finds nothing of A's to remove by name (it has no name any more),
    // and B's queue is alive.
    let removed = procq::collect_garbage().unwrap();
    assert!(!removed.contains(&name), "{removed:?}");
    assert_eq!(identity(&name), new);
    assert_eq!(procq::stats(&name).unwrap().items, 1);
    b.finish();
    assert!(!common::segment_exists(&name));
}
