//! What the Redis test files share (`tests/redis.rs`,
//! `tests/redis_delivery.rs`, `tests/redis_cluster.rs`; their child roles
//! beside their own are in `contract_support`): the server `50-redis.sh` started, fresh
//! queue names, private servers of a test's own, and a TCP proxy that loses
//! a reply on purpose. Each test file uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The item that tells a child process to stop.
pub const SENTINEL: u64 = u64::MAX;

/// `redis://127.0.0.1:PORT/0`, or `None` (with a message) when the test
/// script could not provide a server.
pub fn server() -> Option<String> {
    match std::env::var("PROCQ_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIP: PROCQ_REDIS_URL is not set (no redis-server); \
                 run scripts/test.d/50-redis.sh to test the Redis backend"
            );
            None
        }
    }
}

pub fn fresh(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of this test's own, with every write fsynced to its
/// append-only file before it is acknowledged, so that a crash loses
/// nothing acknowledged.
pub struct Server {
    pub child: Child,
}

impl Server {
    pub fn start(port: u16, dir: &std::path::Path) -> Server {
        Server::start_with(port, dir, &[])
    }

    /// Starts a server with `extra` configuration arguments.
    pub fn start_with(port: u16, dir: &std::path::Path, extra: &[&str]) -> Server {
        let bin = std::env::var("PROCQ_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A redis-server of a test's own, on a free port, with its data in a
/// fresh temporary directory (see [`Server`]); stopped, then its directory
/// removed, however the test ends.
pub struct OwnServer {
    /// (Dropped first: the server stops before its directory goes.)
    pub server: Server,
    pub port: u16,
    pub dir: TempDir,
}

impl OwnServer {
    /// Starts one with `extra` configuration arguments; `tag` names its
    /// directory.
    pub fn start(tag: &str, extra: &[&str]) -> OwnServer {
        let dir = TempDir::fresh(tag);
        let port = free_port();
        let server = Server::start_with(port, &dir.0, extra);
        OwnServer { server, port, dir }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn base(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// A test's temporary directory, removed however the test ends.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh, empty one; `tag` names it.
    pub fn fresh(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(fresh(tag));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a [`LossyProxy`] loses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lose {
    /// The reply: the command is forwarded (the server runs it), the
    /// server's next chunk on that connection is swallowed and both sockets
    /// are shut, as when a connection breaks after the server has acted and
    /// before the client heard.
    Reply,
    /// The command itself: it is never forwarded and both sockets are shut,
    /// as when a connection breaks right after the client sent it.
    Request,
}

/// The marker a [`LossyProxy`] is armed with, and what it loses.
type Armed = std::sync::Arc<std::sync::Mutex<Option<(Vec<u8>, Lose)>>>;

/// A TCP proxy between the client and the real server that can lose one
/// reply or one command ([`Lose`]): the first client chunk containing the
/// marker it was armed with.
pub struct LossyProxy {
    pub port: u16,
    /// The marker whose command (or its reply) is to be lost (one shot).
    armed: Armed,
    /// Replies swallowed so far.
    lost: std::sync::Arc<AtomicU64>,
    /// Once set, nothing more is forwarded either way (connections stay
    /// open): a server gone silent.
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LossyProxy {
    /// Listens on a free 127.0.0.1 port and forwards every connection to
    /// `upstream` (host:port), a thread per direction.
    pub fn start(upstream: &str) -> LossyProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpStream};
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Armed = Arc::default();
        let lost = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_owned();
        let silent = Arc::new(AtomicBool::new(false));
        let (armed2, lost2, silent2) = (armed.clone(), lost.clone(), silent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue; // the client sees the connection close
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                // Set (before the request is forwarded) when the server's
                // next chunk on this connection is to be swallowed.
                let lose_reply = Arc::new(AtomicBool::new(false));
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (armed, lose, lost) = (armed2.clone(), lose_reply.clone(), lost2.clone());
                let (mute_in, mute_out) = (silent2.clone(), silent2.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match c_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if mute_in.load(Ordering::SeqCst) {
                            continue;
                        }
                        {
                            let mut armed = armed.lock().unwrap();
                            let hit = armed.as_ref().and_then(|(m, what)| {
                                buf[..n]
                                    .windows(m.len())
                                    .any(|w| w == m.as_slice())
                                    .then_some(*what)
                            });
                            if hit.is_some() {
                                *armed = None;
                            }
                            if hit == Some(Lose::Request) {
                                lost.fetch_add(1, Ordering::SeqCst);
                                let _ = c_in.shutdown(Shutdown::Both);
                                break;
                            }
                            if hit == Some(Lose::Reply) {
                                lose.store(true, Ordering::SeqCst);
                            }
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                let lost = lost2.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match s_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if mute_out.load(Ordering::SeqCst) {
                            continue;
                        }
                        if lose_reply.load(Ordering::SeqCst) {
                            lost.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_in.shutdown(Shutdown::Both);
                    let _ = c_out.shutdown(Shutdown::Both);
                });
            }
        });
        LossyProxy {
            port,
            armed,
            lost,
            silent,
        }
    }

    /// Forwards nothing more, either way, keeping every connection open.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Loses the reply to the next command carrying `marker`.
    pub fn arm(&self, marker: &str) {
        self.arm_to_lose(marker, Lose::Reply);
    }

    /// Loses the next command carrying `marker`, or its reply.
    pub fn arm_to_lose(&self, marker: &str, what: Lose) {
        *self.armed.lock().unwrap() = Some((marker.as_bytes().to_vec(), what));
    }

    /// Replies and commands lost so far.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Sends `sig` to `child`.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this test started and has not reaped.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill({}, {sig})", child.id());
}

/// `host:port` of a `redis://host:port/db` URL (`host:port,host:port…` of
/// a cluster's).
pub fn authority(base: &str) -> &str {
    base.split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
}
