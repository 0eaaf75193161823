//! A started child as its parent sees it: its pid, a pidfd to wait on, the
//! read end of its result pipe and the frames read from it, and how it
//! ended. [`Running::outcome`] turns all that into the result of `join`.

use std::any::Any;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};
use serde::de::DeserializeOwned;

use crate::error::ProcessError;
use crate::protocol::{
    split_frames, FRAME_FAILED, FRAME_NOT_DISPATCHED, FRAME_PANICKED, FRAME_RETURNED, FRAME_STARTED,
};

/// Poll interval when no pidfd is available.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// A started child: its pid, the read end of its result pipe, and what has
/// been read from it.
pub(crate) struct Running {
    pub(crate) pid: u32,
    /// Readable when the child has exited (`None`: no pidfd support).
    pidfd: Option<OwnedFd>,
    /// Read end of the result pipe (non-blocking); `None` after EOF.
    pipe: Option<OwnedFd>,
    /// Bytes read but not yet parsed into frames.
    buf: Vec<u8>,
    frames: Vec<(u8, Vec<u8>)>,
    /// The arguments, kept until the child reports that it decoded them.
    keep: Option<Box<dyn Any + Send>>,
    pub(crate) status: Option<ExitStatus>,
    /// The outcome was handed out by a successful `join`.
    taken: bool,
}

impl Running {
    pub(crate) fn new(pid: u32, pipe: OwnedFd, keep: Box<dyn Any + Send>) -> Running {
        let pidfd = Pid::from_raw(pid as i32).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        Running {
            pid,
            pidfd,
            pipe: Some(pipe),
            buf: Vec::new(),
            frames: Vec::new(),
            keep: Some(keep),
            status: None,
            taken: false,
        }
    }

    /// An empty stand-in left behind when a dropped process's state moves to
    /// its reaper thread.
    pub(crate) fn detached() -> Running {
        Running {
            pid: 0,
            pidfd: None,
            pipe: None,
            buf: Vec::new(),
            frames: Vec::new(),
            keep: None,
            status: Some(ExitStatus::from_raw(0)),
            taken: true,
        }
    }

    pub(crate) fn rustix_pid(&self) -> Pid {
        Pid::from_raw(self.pid as i32).expect("child pid is positive")
    }

    /// Reads whatever the pipe holds without blocking.
    fn drain(&mut self) {
        let Some(pipe) = &self.pipe else { return };
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match rustix::io::read(pipe, &mut chunk) {
                Ok(0) => {
                    self.pipe = None;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(Errno::INTR) => continue,
                // EAGAIN: nothing more for now. Any other error: the pipe is
                // unusable; what the child sent so far is all we get.
                Err(Errno::AGAIN) => break,
                Err(_) => {
                    self.pipe = None;
                    break;
                }
            }
        }
        let (frames, used) = split_frames(&self.buf);
        if frames.iter().any(|(tag, _)| *tag == FRAME_STARTED) {
            // The child holds its own handles now.
            self.keep = None;
        }
        self.frames.extend(frames);
        self.buf.drain(..used);
    }

    /// Reaps the child if it has exited; never blocks.
    pub(crate) fn poll_exit(&mut self) -> Result<(), ProcessError> {
        self.drain();
        if self.status.is_some() {
            return Ok(());
        }
        match rustix::process::waitpid(Some(self.rustix_pid()), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => {
                self.status = Some(ExitStatus::from_raw(status.as_raw()));
                // Everything the child wrote before exiting is in the pipe.
                self.drain();
                self.pidfd = None;
                self.keep = None;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(Errno::INTR) => Ok(()),
            Err(e) => Err(ProcessError::Io {
                context: "waiting for the child (was SIGCHLD set to SIG_IGN?)",
                source: e.into(),
            }),
        }
    }

    /// Waits until the child exits (`Ok(true)`) or the deadline passes
    /// (`Ok(false)`), reading its messages meanwhile so that a large return
    /// value never blocks it.
    pub(crate) fn wait(&mut self, deadline: Option<Instant>) -> Result<bool, ProcessError> {
        loop {
            self.poll_exit()?;
            if self.status.is_some() {
                return Ok(true);
            }
            let now = Instant::now();
            let mut wait = match deadline {
                Some(d) if d <= now => return Ok(false),
                Some(d) => Some(d - now),
                None => None,
            };
            if self.pidfd.is_none() {
                wait = Some(wait.map_or(POLL_SLICE, |w| w.min(POLL_SLICE)));
            }
            let timeout = wait.map(|w| Timespec {
                tv_sec: w.as_secs() as _,
                tv_nsec: w.subsec_nanos() as _,
            });
            let mut fds = Vec::with_capacity(2);
            if let Some(fd) = &self.pidfd {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some(fd) = &self.pipe {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if fds.is_empty() {
                std::thread::sleep(wait.unwrap_or(POLL_SLICE));
                continue;
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    return Err(ProcessError::Io {
                        context: "waiting for the child",
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// Turns what the exited child sent and its exit status into the result
    /// of `join`.
    pub(crate) fn outcome<R: DeserializeOwned>(&mut self) -> Result<R, ProcessError> {
        let pid = self.pid;
        if self.taken {
            return Err(ProcessError::AlreadyJoined { pid });
        }
        let status = self.status.expect("outcome after exit");
        let text = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
        let started = self.frames.iter().any(|(t, _)| *t == FRAME_STARTED);
        for (tag, body) in &self.frames {
            match *tag {
                FRAME_PANICKED => {
                    return Err(ProcessError::Panicked {
                        pid,
                        message: text(body),
                    })
                }
                FRAME_FAILED => {
                    return Err(ProcessError::Failed {
                        pid,
                        message: text(body),
                    })
                }
                FRAME_NOT_DISPATCHED => {
                    return Err(ProcessError::NotDispatched {
                        pid,
                        detail: text(body),
                    })
                }
                _ => {}
            }
        }
        if let Some(signal) = status.signal() {
            return Err(ProcessError::Signaled { pid, signal });
        }
        let code = status.code().unwrap_or(-1);
        if !started {
            return Err(ProcessError::NotDispatched {
                pid,
                detail: format!(
                    "it exited with code {code} without running its target; \
                     does main() call procq::init() on its first line?"
                ),
            });
        }
        if code != 0 {
            return Err(ProcessError::Exited { pid, code });
        }
        // A target that ended with `exit(0)` sent no value: that is fine for
        // `()` (which decodes from nothing), an error for anything else.
        let body = self
            .frames
            .iter()
            .find(|(t, _)| *t == FRAME_RETURNED)
            .map_or(&[][..], |(_, b)| b.as_slice());
        let value = postcard::from_bytes(body).map_err(|source| ProcessError::Codec {
            context: "decoding the child's return value (did the target exit early?)",
            source,
        })?;
        self.taken = true;
        self.frames.clear();
        Ok(value)
    }
}
