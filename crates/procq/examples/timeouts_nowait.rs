//! The article's "Customization Points": timeouts and non-blocking calls.
//! `get_timeout` on an empty queue fails with `Error::Empty`, `put_nowait`
//! on a full queue with `Error::Full`, `get_nowait` on an empty queue with
//! `Error::Empty`; and a `get_timeout` that a child process satisfies in
//! time.
//!
//! Run: `cargo run -p procq --example timeouts_nowait`
//!
//! The article describes these calls in prose only; the equivalent Python:
//!
//! ```python
//! import multiprocessing, queue, time
//!
//! def late_put(q):
//!     time.sleep(0.3)
//!     q.put("late item")
//!
//! if __name__ == "__main__":
//!     q = multiprocessing.Queue(maxsize=2)
//!     try:
//!         q.get(timeout=0.5)
//!     except queue.Empty:
//!         print("get(timeout=0.5) -> queue.Empty")
//!     q.put_nowait("a"); q.put_nowait("b")
//!     try:
//!         q.put_nowait("c")
//!     except queue.Full:
//!         print("put_nowait('c') -> queue.Full")
//!     print(q.get_nowait(), q.get_nowait())
//!     try:
//!         q.get_nowait()
//!     except queue.Empty:
//!         print("get_nowait() -> queue.Empty")
//!     p = multiprocessing.Process(target=late_put, args=(q,))
//!     p.start()
//!     print(q.get(timeout=3))
//!     p.join()
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use procq::{Process, Queue};

fn late_put(q: Queue<String>) {
    std::thread::sleep(Duration::from_millis(300));
    q.put(&"late item".to_owned()).expect("put");
}

fn main() -> Result<(), Box<dyn Error>> {
    procq::init();

    let q = Queue::<String>::new(2)?; // maxsize=2

    // 1. get with a timeout on an empty queue
    let start = Instant::now();
    match q.get_timeout(Duration::from_millis(500)) {
        Err(procq::Error::Empty) => println!(
            "get_timeout(0.5 s) -> Error::Empty after {:.1} s",
            start.elapsed().as_secs_f64()
        ),
        other => return Err(format!("expected Error::Empty, got {other:?}").into()),
    }

    // 2. put_nowait on a full queue
    q.put_nowait(&"a".to_owned())?;
    q.put_nowait(&"b".to_owned())?;
    println!("qsize() = {}, full() = {}", q.qsize(), q.full());
    match q.put_nowait(&"c".to_owned()) {
        Err(procq::Error::Full) => println!("put_nowait(\"c\") -> Error::Full"),
        other => return Err(format!("expected Error::Full, got {other:?}").into()),
    }

    // 3. get_nowait until the queue is empty
    println!("get_nowait() -> {:?}", q.get_nowait()?);
    println!("get_nowait() -> {:?}", q.get_nowait()?);
    match q.get_nowait() {
        Err(procq::Error::Empty) => println!("get_nowait() -> Error::Empty"),
        other => return Err(format!("expected Error::Empty, got {other:?}").into()),
    }

    // 4. a timeout that is not reached: another process puts in time
    let mut p = Process::spawn(late_put, (q.clone(),))?;
    let start = Instant::now();
    let item = q.get_timeout(Duration::from_secs(3))?;
    println!(
        "get_timeout(3 s) -> {item:?} from process {} after {:.1} s",
        p.pid().unwrap_or(0),
        start.elapsed().as_secs_f64()
    );
    p.join()?;
    Ok(())
}
