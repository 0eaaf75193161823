//! `procq demo` (the article's programs across real processes) and
//! `procq bench` (the benchmark suite with a progress bar).

use std::time::Duration;

use procq::{Process, Queue};

use crate::Failure;

/// The article's worker: take the ball, work, put it back incremented.
fn increment_worker(queue: Queue<u64>, loops: u64) {
    let pid = std::process::id();
    for _ in 0..loops {
        let value = queue.get().expect("get the ball");
        std::thread::sleep(Duration::from_millis(10));
        queue.put(&(value + 1)).expect("put the ball back");
    }
    println!("[{pid}] Processing complete");
}

fn producer(q: Queue<Option<String>>) {
    let pid = std::process::id();
    for i in 0..5 {
        let data = format!("Job-{i}");
        println!("[Prod {pid}] Generating: {data}");
        q.put(&Some(data)).expect("put a job");
        // The article sleeps 0.5 s; a tenth keeps the demo quick.
        std::thread::sleep(Duration::from_millis(50));
    }
    q.put(&None).expect("put the stop signal");
}

fn consumer(q: Queue<Option<String>>) {
    let pid = std::process::id();
    while let Some(data) = q.get().expect("get a job") {
        println!("[Cons {pid}] Processing: {data}");
    }
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::op(e.to_string())
}

pub(crate) fn run() -> Result<(), Failure> {
    let (num_processes, loops) = (2, 50);
    println!("== Token counter: {num_processes} processes x {loops} loops pass one value through a procq queue ==");
    let counter_queue = Queue::<u64>::new(0)?;
    counter_queue.put(&0)?;
    println!("--- Starting process ---");
    let mut processes = Vec::new();
    for _ in 0..num_processes {
        processes
            .push(Process::spawn(increment_worker, (counter_queue.clone(), loops)).map_err(fail)?);
    }
    for p in &mut processes {
        p.join().map_err(fail)?;
    }
    let final_result = counter_queue.get()?;
    println!("--- All processes complete ---");
    println!("Final counter value: {final_result}");
    let expected = num_processes * loops;
    if final_result == expected {
        println!(">> Success: Value reached {expected}.");
    } else {
        return Err(Failure::op(format!(
            ">> Failure: Value reached {final_result} instead of {expected}."
        )));
    }

    println!();
    println!("== Producer-consumer: None stops the consumer ==");
    let q = Queue::<Option<String>>::new(0)?;
    let mut p1 = Process::spawn(producer, (q.clone(),)).map_err(fail)?;
    let mut p2 = Process::spawn(consumer, (q.clone(),)).map_err(fail)?;
    p1.join().map_err(fail)?;
    p2.join().map_err(fail)?;
    println!("--- Producer and consumer done ---");
    Ok(())
}

pub(crate) fn bench(
    quick: bool,
    json: Option<std::path::PathBuf>,
    plot: Option<std::path::PathBuf>,
    filter: Option<String>,
) -> Result<(), Failure> {
    let mut opts = if quick {
        procq_bench::Options::quick()
    } else {
        procq_bench::Options::default()
    };
    opts.filter = filter;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .map_err(|e| Failure::op(e.to_string()))?,
    );
    let report = procq_bench::run(&opts, &mut |p| match p {
        procq_bench::Progress::Started { case, index, total } => {
            bar.set_length(total as u64);
            bar.set_position(index as u64);
            bar.set_message(case);
        }
        procq_bench::Progress::Finished { case, summary } => {
            bar.println(format!("{case}: {summary}"))
        }
        procq_bench::Progress::Failed { case, .. } => bar.println(format!("{case}: FAILED")),
    });
    bar.finish_and_clear();
    println!("{}", report.to_table());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).map_err(fail)?;
        std::fs::write(&path, text)?;
    }
    if let Some(path) = plot {
        report.write_svg(&path)?;
    }
    if report.errors.is_empty() && report.leaked_segments.is_empty() {
        Ok(())
    } else {
        Err(Failure::op(format!(
            "{} case(s) failed",
            report.errors.len()
        )))
    }
}
