//! The CPU one small put + get costs, with no cache line moving between
//! cores: one thread puts 512 items on one bounded queue (of 1024), then
//! gets them, until N items have gone through.
//! Run it under callgrind with two N and divide the difference in
//! instructions by the difference in N (docs/performance.md):
//!
//! ```sh
//! RUSTFLAGS=--cfg=rustix_use_libc cargo build --release -p procq \
//!     --example put_get_cost --target-dir target/callgrind
//! valgrind --tool=callgrind target/callgrind/release/examples/put_get_cost u64 102400
//! ```
//!
//! Arguments: `u64`, `100b` (a `Vec<u8>` of 100 bytes, each got as a
//! fresh `Vec`) or `joinable` (u64 on a `JoinableQueue`, each get followed
//! by its `task_done`), then N (a multiple of 512). Without valgrind it
//! prints the wall time per put + get.

use std::time::Instant;

/// Items per round: the queue holds twice as many.
const ROUND: usize = 512;

/// Puts `items` (a round), gets as many back, until `n` went through;
/// prints the wall time per item.
fn rounds<T>(
    n: usize,
    items: &[T],
    put: impl Fn(&T) -> procq::Result<()>,
    get: impl Fn() -> procq::Result<()>,
) -> procq::Result<()> {
    let start = Instant::now();
    for _ in 0..n / ROUND {
        for item in items {
            put(item)?;
        }
        for _ in 0..ROUND {
            get()?;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{n} items: {ns:.0} ns per put + get");
    Ok(())
}

fn run<T: serde::Serialize + serde::de::DeserializeOwned + 'static>(
    n: usize,
    make: impl Fn(usize) -> T,
) -> procq::Result<()> {
    let q = procq::Queue::<T>::new(2 * ROUND)?;
    let items: Vec<T> = (0..ROUND).map(make).collect();
    rounds(
        n,
        &items,
        |item| q.put(item),
        || q.get().map(std::hint::black_box).map(drop),
    )
}

/// [`run`] of u64 items on a `JoinableQueue`, with a `task_done` per get.
fn run_joinable(n: usize) -> procq::Result<()> {
    let q = procq::JoinableQueue::<u64>::new(2 * ROUND)?;
    let items: Vec<u64> = (0..ROUND).map(|i| i as u64 * 0x9E37_79B9).collect();
    rounds(
        n,
        &items,
        |item| q.put(item),
        || {
            std::hint::black_box(q.get()?);
            q.task_done()
        },
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "u64".to_owned());
    let n: usize = args.next().map_or(Ok(100_000), |s| s.parse())?;
    match kind.as_str() {
        "u64" => run(n, |i| i as u64 * 0x9E37_79B9)?,
        "100b" => run(n, |i| vec![i as u8; 100])?,
        "joinable" => run_joinable(n)?,
        other => return Err(format!("unknown item kind {other:?} (u64, 100b or joinable)").into()),
    }
    Ok(())
}
