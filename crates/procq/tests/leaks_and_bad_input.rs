//! No shared memory is left behind (normal exit, panic, every user killed),
//! orphans are collected safely, and bad input gets an error that loses
//! nothing.

mod common;

use std::time::Duration;

use procq::{Builder, Error, Queue, RawQueue};
use serde::{Deserialize, Serialize, Serializer};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn child_entry() {
    let Some((role, args)) = common::role() else {
        return;
    };
    match role.as_str() {
        "create-and-panic" => {
            let _q = Builder::new().name(&args[0]).build::<u64>().unwrap();
            panic!("deliberate panic while holding a queue");
        }
        "create-and-wait" => {
            let q = Builder::new().name(&args[0]).build::<u64>().unwrap();
            q.put(&1).unwrap();
            std::thread::sleep(LIMIT); // killed by the parent
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_panicking_process_leaves_no_segment() {
    let name = common::unique("panic");
    let mut child = common::spawn("create-and-panic", &[&name]);
    let status = common::wait(&mut child, LIMIT);
    assert!(!status.success());
    assert!(
        !common::segment_exists(&name),
        "unwinding removed the queue"
    );
}

#[test]
fn queues_of_killed_processes_are_collected_and_live_ones_are_not() {
    let name = common::unique("orphan");
    let live = Queue::<u64>::new(0).unwrap();
    let mut child = common::spawn("create-and-wait", &[&name]);
    // Wait until the child has created its queue and put into it.
    let start = std::time::Instant::now();
    while procq::stats(&name).map(|s| s.items).unwrap_or(0) == 0 {
        assert!(start.elapsed() < LIMIT, "child never created its queue");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !procq::collect_garbage().unwrap().contains(&name),
        "in use: kept"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        common::segment_exists(&name),
        "a killed process cannot clean up"
    );
    let st = procq::stats(&name).unwrap();
    assert_eq!((st.attached_processes, st.dead_processes), (0, 1));
    let removed = procq::collect_garbage().unwrap();
    assert!(removed.contains(&name), "orphan collected: {removed:?}");
    assert!(!removed.iter().any(|n| n == live.name()), "live queue kept");
    assert!(!common::segment_exists(&name));
    live.put(&1).unwrap();
}

/// A value whose serialization fails halfway through.
struct Unserializable;
impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot serialize this"))
    }
}
impl<'de> Deserialize<'de> for Unserializable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unserializable)
    }
}

#[test]
fn a_value_that_fails_to_serialize_leaves_the_queue_unchanged() {
    let q = Queue::<Unserializable>::new(0).unwrap();
    assert!(matches!(q.put(&Unserializable), Err(Error::Codec(_))));
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.stats().unwrap().items_put, 0);
    // Same for a batch: nothing of it goes in.
    assert!(q.put_many(&[Unserializable, Unserializable]).is_err());
    assert_eq!(q.qsize(), 0);
}

#[test]
fn bytes_that_fail_to_decode_do_not_poison_the_queue() {
    let q = Queue::<String>::new(0).unwrap();
    let raw = RawQueue::open(q.name()).unwrap();
    raw.put(&[3, 0xff, 0xfe, 0xfd]).unwrap(); // not UTF-8
    raw.put(&[200]).unwrap(); // length without data
    q.put(&"fine".to_owned()).unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::Codec(_))));
    assert!(matches!(q.get_nowait(), Err(Error::Codec(_))));
    assert_eq!(q.get_nowait().unwrap(), "fine");
    // A batch stops before a bad item and reports it on the next call.
    q.put(&"a".to_owned()).unwrap();
    raw.put(&[200]).unwrap();
    q.put(&"b".to_owned()).unwrap();
    assert_eq!(q.get_many(10).unwrap(), vec!["a"]);
    assert!(matches!(q.get_many(10), Err(Error::Codec(_))));
    assert_eq!(q.get_many(10).unwrap(), vec!["b"]);
}

#[test]
fn an_item_larger_than_the_queue_is_refused_at_put_without_waiting() {
    let q = Builder::new()
        .maxsize(1)
        .max_bytes(1 << 20)
        .build::<Vec<u8>>()
        .unwrap();
    let start = std::time::Instant::now();
    match q.put(&vec![0; 2 << 20]) {
        Err(Error::TooLarge { size, limit }) => assert!(size > limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    // The largest item that fits does fit, even in a full-sized ring.
    let max = (1 << 20) - 16 - 4; // record header, varint length prefix
    q.put(&vec![1; max]).unwrap();
    assert_eq!(q.get().unwrap().len(), max);
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone>() {}
    assert_traits::<Queue<String>>();
    assert_traits::<procq::JoinableQueue<Vec<u8>>>();
    assert_traits::<RawQueue>();
}
