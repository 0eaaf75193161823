//! The article's "Full Code Example": one integer "ball" in a queue serves
//! as the right to update the counter, so two processes count to 100
//! without a lock.
//!
//! Run: `cargo run -p procq --example token_counter [num_processes] [loops]`
//! (defaults 2 and 50, as in the article).
//!
//! The Python original, for comparison:
//!
//! ```python
//! import multiprocessing
//! import time
//! import os
//!
//! def increment_worker(queue: multiprocessing.Queue, loops: int):
//!     pid = os.getpid()
//!     for _ in range(loops):
//!         # 1. Get the value (waits if empty = another process is processing)
//!         value = queue.get()
//!         # 2. Calculation (simulated heavy task)
//!         time.sleep(0.01)
//!         value += 1
//!         # 3. Put the updated value back (allows the next process to get it)
//!         queue.put(value)
//!     print(f"[{pid}] Processing complete")
//!
//! def main():
//!     counter_queue = multiprocessing.Queue()
//!     counter_queue.put(0)
//!     print("--- Starting process ---")
//!     processes = []
//!     num_processes = 2
//!     loops = 50
//!     for _ in range(num_processes):
//!         p = multiprocessing.Process(
//!             target=increment_worker,
//!             args=(counter_queue, loops)
//!         )
//!         processes.append(p)
//!         p.start()
//!     for p in processes:
//!         p.join()
//!     final_result = counter_queue.get()
//!     print("--- All processes complete ---")
//!     print(f"Final counter value: {final_result}")
//!     expected = num_processes * loops
//!     if final_result == expected:
//!         print(f">> Success: Value reached {expected}.")
//!     else:
//!         print(f">> Failure: Value reached {final_result} instead of {expected}.")
//!
//! if __name__ == "__main__":
//!     main()
//! ```

use std::error::Error;
use std::time::Duration;

use procq::{Process, Queue};

/// Gets the value from the queue, increments it and puts it back. Because
/// `queue.get()` blocks, exclusive control is handled automatically.
fn increment_worker(queue: Queue<u64>, loops: u64) {
    let pid = std::process::id();
    for _ in 0..loops {
        // 1. Get the value (waits if empty = another process is processing)
        let mut value = queue.get().expect("get the ball");
        // 2. Calculation (simulated heavy task)
        std::thread::sleep(Duration::from_millis(10));
        value += 1;
        // 3. Put the updated value back (allows the next process to get it)
        queue.put(&value).expect("put the ball back");
        // Log output (optional)
        // println!("[{pid}] updated to {value}");
    }
    println!("[{pid}] Processing complete");
}

fn main() -> Result<(), Box<dyn Error>> {
    // Must come first: in a worker process this runs the worker and exits.
    procq::init();

    // Create a process-safe queue
    let counter_queue = Queue::<u64>::new(0)?;
    // Put the initial value 0
    counter_queue.put(&0)?;

    println!("--- Starting process ---");

    let mut processes = Vec::new();
    let num_processes = arg(1, 2);
    let loops = arg(2, 50);

    // Create and start processes
    for _ in 0..num_processes {
        let mut p = Process::new(increment_worker, (counter_queue.clone(), loops));
        p.start()?;
        processes.push(p);
    }

    // Wait for all processes to finish
    for p in &mut processes {
        p.join()?;
    }

    // Retrieve the final result
    let final_result = counter_queue.get()?;
    println!("--- All processes complete ---");
    println!("Final counter value: {final_result}");

    let expected = num_processes * loops;
    if final_result == expected {
        println!(">> Success: Value reached {expected}.");
    } else {
        println!(">> Failure: Value reached {final_result} instead of {expected}.");
        std::process::exit(1);
    }
    Ok(())
}

/// The `index`-th command-line argument as a number, or `default`.
fn arg(index: usize, default: u64) -> u64 {
    std::env::args()
        .nth(index)
        .map(|a| a.parse().expect("arguments: [num_processes] [loops]"))
        .unwrap_or(default)
}
