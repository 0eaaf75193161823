//! The article's JoinableQueue tip: workers call `task_done()` for every
//! item they get, and `join()` waits until every item put has been
//! processed. Then the main process ends the stream with `shutdown()`:
//! each worker's `for task in &q` loop ends once the queue is shut down and
//! drained, so no `None` sentinel per worker (`producer_consumer.rs` keeps
//! the article's sentinel).
//!
//! Run: `cargo run -p procq --example joinable [num_tasks]` (default 10).
//!
//! The article mentions JoinableQueue in prose only; the equivalent Python,
//! with procq's JoinableQueue (Python 3.13's `shutdown()` and `for task in
//! q:`, across processes; `multiprocessing.JoinableQueue` has neither and
//! needs a `None` per worker instead):
//!
//! ```python
//! import multiprocessing, os, time
//! import procq
//!
//! def worker(q):
//!     done = 0
//!     for task in q:  # ends once q is shut down and drained
//!         print(f"[{os.getpid()}] Working on {task}")
//!         time.sleep(0.05)
//!         done += 1
//!         q.task_done()
//!     print(f"[{os.getpid()}] Stopping after {done} tasks")
//!
//! if __name__ == "__main__":
//!     q = procq.JoinableQueue()
//!     workers = [multiprocessing.Process(target=worker, args=(q,)) for _ in range(2)]
//!     for w in workers:
//!         w.start()
//!     for i in range(10):
//!         q.put(f"Task-{i}")
//!     q.join()
//!     print("--- All 10 tasks are done ---")
//!     q.shutdown()  # the end of the stream, for every worker
//!     for w in workers:
//!         w.join()
//!     print("--- Workers stopped ---")
//! ```

use std::error::Error;
use std::time::Duration;

use procq::{JoinableQueue, Process};

/// Handles tasks until the queue is shut down and drained; returns how
/// many it handled.
fn worker(q: JoinableQueue<String>) -> u32 {
    let pid = std::process::id();
    let mut done = 0;
    for task in &q {
        let task = task.expect("get a task");
        println!("[{pid}] Working on {task}");
        std::thread::sleep(Duration::from_millis(50));
        done += 1;
        q.task_done().expect("task_done");
    }
    println!("[{pid}] Stopping after {done} tasks");
    done
}

fn main() -> Result<(), Box<dyn Error>> {
    procq::init();

    let num_tasks: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 10,
    };
    let q = JoinableQueue::new(0)?;
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(Process::spawn(worker, (q.clone(),))?);
    }
    for i in 0..num_tasks {
        q.put(&format!("Task-{i}"))?;
    }
    q.join()?; // every task got its task_done()
    println!("--- All {num_tasks} tasks are done ---");

    q.shutdown(false)?; // the end of the stream, for every worker
    let mut handled = 0;
    for w in &mut workers {
        handled += w.join()?; // each worker returns its count
    }
    println!("--- Workers stopped ({handled} tasks handled) ---");
    Ok(())
}
