//! The article's "Advanced Application": a producer process puts five jobs
//! and then a stop signal (`None`); a consumer process handles jobs until it
//! sees the stop signal.
//!
//! Kept with the article's `None` sentinel on purpose, so that it reads
//! line for line like the article. procq's own way to end a stream is
//! `shutdown()` (Python 3.13's, across processes): every consumer's
//! `for job in &q` loop ends once the queue is shut down and drained, with
//! no sentinel per consumer; `examples/joinable.rs` shows it.
//!
//! Run: `cargo run -p procq --example producer_consumer`. The producer
//! sleeps 0.5 s per job as in the article; set `PROCQ_EXAMPLE_SLEEP_MS` to
//! change that (the tests use a few milliseconds).
//!
//! The Python original, for comparison:
//!
//! ```python
//! import multiprocessing
//! import time
//!
//! def producer(q):
//!     for i in range(5):
//!         data = f"Job-{i}"
//!         print(f"[Prod] Generating: {data}")
//!         q.put(data)
//!         time.sleep(0.5)
//!     # Send termination signal
//!     q.put(None)
//!
//! def consumer(q):
//!     while True:
//!         data = q.get()
//!         if data is None:
//!             break
//!         print(f"[Cons] Processing: {data}")
//!
//! if __name__ == "__main__":
//!     q = multiprocessing.Queue()
//!     p1 = multiprocessing.Process(target=producer, args=(q,))
//!     p2 = multiprocessing.Process(target=consumer, args=(q,))
//!     p1.start(); p2.start()
//!     p1.join(); p2.join()
//! ```

use std::error::Error;
use std::time::Duration;

use procq::{Process, Queue};

fn producer(q: Queue<Option<String>>) {
    println!("[Prod] started in process {}", std::process::id());
    for i in 0..5 {
        let data = format!("Job-{i}");
        println!("[Prod] Generating: {data}");
        q.put(&Some(data)).expect("put a job");
        std::thread::sleep(pause());
    }
    // Send termination signal
    q.put(&None).expect("put the stop signal");
}

fn consumer(q: Queue<Option<String>>) {
    println!("[Cons] started in process {}", std::process::id());
    // `None` is the stop signal.
    while let Some(data) = q.get().expect("get a job") {
        println!("[Cons] Processing: {data}");
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    procq::init(); // first: in a child, runs its target and exits

    let q = Queue::new(0)?;
    let mut p1 = Process::new(producer, (q.clone(),));
    let mut p2 = Process::new(consumer, (q.clone(),));
    p1.start()?;
    p2.start()?;
    p1.join()?;
    p2.join()?;
    Ok(())
}

/// The producer's pause between jobs: 0.5 s as in the article, or
/// `PROCQ_EXAMPLE_SLEEP_MS` milliseconds.
fn pause() -> Duration {
    let ms = std::env::var("PROCQ_EXAMPLE_SLEEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    Duration::from_millis(ms)
}
