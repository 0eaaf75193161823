//! Starting worker processes and talking to them (see `worker` for the
//! line protocol).
//!
//! Every wait has a deadline: a worker that hangs or dies makes its case
//! fail with an error instead of hanging the suite. A [`Crew`] kills and
//! reaps whatever workers are still running when it is dropped, so no
//! process outlives a failed case.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::worker::{monotonic_ns, Role, WORKER_ARG};

/// Errors of the suite are plain messages: they end up in the report.
pub(crate) type Result<T> = std::result::Result<T, String>;

struct Member {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: VecDeque<String>,
    eof: bool,
}

/// The worker processes of one run.
pub(crate) struct Crew<'a> {
    exe: &'a Path,
    members: Vec<Member>,
    tx: Sender<(usize, Option<String>)>,
    rx: Receiver<(usize, Option<String>)>,
}

/// One worker's `done` line: its end time and the numbers after it.
pub(crate) struct Done {
    pub(crate) end_ns: u64,
    pub(crate) values: Vec<u64>,
}

impl<'a> Crew<'a> {
    pub(crate) fn new(exe: &'a Path) -> Crew<'a> {
        let (tx, rx) = mpsc::channel();
        Crew {
            exe,
            members: Vec::new(),
            tx,
            rx,
        }
    }

    /// Starts a worker and waits for its `ready` line; returns its index and
    /// whatever followed `ready` (e.g. a server name).
    pub(crate) fn spawn(&mut self, name: &str, role: &Role) -> Result<(usize, String)> {
        let spec = serde_json::to_string(role).map_err(|e| e.to_string())?;
        let mut child = Command::new(self.exe)
            .arg(WORKER_ARG)
            .arg(&spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting worker {}: {e}", self.exe.display()))?;
        let idx = self.members.len();
        let stdout = child.stdout.take().ok_or("worker has no stdout")?;
        let tx = self.tx.clone();
        // A reader thread per worker turns its stdout into messages, so the
        // parent can wait on all workers at once, with a deadline.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send((idx, Some(l))).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send((idx, None));
        });
        self.members.push(Member {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: VecDeque::new(),
            eof: false,
        });
        let line = self.line(idx, Instant::now() + Duration::from_secs(30))?;
        match line.strip_prefix("ready") {
            Some(rest) => Ok((idx, rest.trim().to_owned())),
            None => Err(format!("{name}: expected \"ready\", got {line:?}")),
        }
    }

    /// The next line from worker `idx`, waiting until `deadline`.
    fn line(&mut self, idx: usize, deadline: Instant) -> Result<String> {
        loop {
            let m = &mut self.members[idx];
            if let Some(l) = m.lines.pop_front() {
                return Ok(l);
            }
            if m.eof {
                let status = match m.child.try_wait() {
                    Ok(Some(s)) => s.to_string(),
                    _ => "stdout closed".to_owned(),
                };
                return Err(format!(
                    "worker {} ended without answering ({status}; see its stderr)",
                    m.name
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((i, Some(l))) => self.members[i].lines.push_back(l),
                Ok((i, None)) => self.members[i].eof = true,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "worker {} did not answer within the time limit",
                        self.members[idx].name
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => return Err("reader threads gone".into()),
            }
        }
    }

    /// Waits until every worker said `word` on a line of its own (e.g.
    /// `warm`: done with its untimed warm-up).
    pub(crate) fn expect_all(&mut self, word: &str, deadline: Instant) -> Result<()> {
        for idx in 0..self.members.len() {
            let line = self.line(idx, deadline)?;
            if line != word {
                let name = &self.members[idx].name;
                return Err(format!("{name}: expected {word:?}, got {line:?}"));
            }
        }
        Ok(())
    }

    /// Sends `go` to every worker; returns the monotonic start time (ns).
    pub(crate) fn go(&mut self) -> Result<u64> {
        let start = monotonic_ns();
        self.tell("go")?;
        Ok(start)
    }

    /// Sends the line `word` to every worker.
    pub(crate) fn tell(&mut self, word: &str) -> Result<()> {
        for m in &mut self.members {
            if let Some(stdin) = m.stdin.as_mut() {
                stdin
                    .write_all(format!("{word}\n").as_bytes())
                    .and_then(|()| stdin.flush())
                    .map_err(|e| format!("telling {} to {word}: {e}", m.name))?;
            }
        }
        Ok(())
    }

    /// Closes worker `idx`'s stdin (the stop signal of load workers).
    pub(crate) fn close_stdin(&mut self, idx: usize) {
        self.members[idx].stdin = None;
    }

    /// Waits for worker `idx`'s `done` line.
    pub(crate) fn done(&mut self, idx: usize, deadline: Instant) -> Result<Done> {
        let line = self.line(idx, deadline)?;
        let name = &self.members[idx].name;
        let mut words = line
            .strip_prefix("done")
            .ok_or_else(|| format!("{name}: expected \"done\", got {line:?}"))?
            .split_whitespace()
            .map(|w| w.parse::<u64>());
        let bad = || format!("{name}: malformed line {line:?}");
        let end_ns = words.next().ok_or_else(bad)?.map_err(|_| bad())?;
        let values = words
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad())?;
        Ok(Done { end_ns, values })
    }

    /// Waits for every worker to exit successfully.
    pub(crate) fn finish(mut self, deadline: Instant) -> Result<()> {
        for m in &mut self.members {
            m.stdin = None;
        }
        for i in 0..self.members.len() {
            loop {
                let m = &mut self.members[i];
                match m.child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => return Err(format!("worker {} failed: {status}", m.name)),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Ok(None) => return Err(format!("worker {} did not exit", m.name)),
                    Err(e) => return Err(format!("waiting for worker {}: {e}", m.name)),
                }
            }
        }
        Ok(())
    }
}

impl Drop for Crew<'_> {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.stdin = None;
            if let Ok(None) = m.child.try_wait() {
                // Only our own children, by handle.
                let _ = m.child.kill();
            }
            let _ = m.child.wait();
        }
    }
}
