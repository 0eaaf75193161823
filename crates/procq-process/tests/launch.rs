//! A program that calls `procq::init()` reads `PROCQ_PROCESS_CHILD` and the
//! descriptors it names. Whoever sets that environment must not be able to
//! make it run anything but a genuine `Process` target: a plain file or an
//! unsealed memfd as payload, an offset to some function, into the middle
//! of one, or anywhere at random must each end the child with a clear
//! error (exit code 2) — never with code at that address running — and a
//! setuid program must refuse the marker altogether.
//!
//! Each case runs this test binary as a crafted child: libtest runs only
//! `test_support!`'s dispatching test there, which calls `init()`.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

procq_process::test_support!();

const MARKER: &str = "PROCQ_PROCESS_CHILD";
const LIMIT: Duration = Duration::from_secs(30);
/// The exit code of a genuine target, and of the decoy below if it ran.
const TARGET_RAN: i32 = 42;
const DECOY_RAN: i32 = 43;

/// A genuine target.
fn target(code: i32) {
    std::process::exit(code);
}

/// Not a target: running it would prove that the child jumped to a forged
/// address.
#[inline(never)]
extern "C" fn decoy() {
    std::process::exit(DECOY_RAN);
}

/// Runs this binary as a child told by `marker` to use `payload` and a
/// fresh result pipe; returns how it ended and its stderr.
fn launch_with(payload: &OwnedFd, marker: Option<String>) -> (ExitStatus, String) {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let (p, w) = (payload.as_raw_fd(), writer.as_raw_fd());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "__procq_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(MARKER, marker.unwrap_or_else(|| format!("2:{p}:{w}")))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: only fcntl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [p, w] {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(writer);
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LIMIT {
            child.kill().unwrap();
            panic!("crafted child hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drop(reader);
    (status, stderr.join().unwrap())
}

fn launch(payload: &OwnedFd) -> (ExitStatus, String) {
    launch_with(payload, None)
}

fn sealed(bytes: &[u8]) -> OwnedFd {
    use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};
    let fd = memfd_create(
        "procq-process-args",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    rustix::io::write(&fd, bytes).unwrap();
    fcntl_add_seals(
        &fd,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )
    .unwrap();
    fd
}

fn genuine() -> Vec<u8> {
    procq_process::__process_payload(target, (TARGET_RAN,), None)
}

fn forged(address: usize) -> Vec<u8> {
    procq_process::__process_payload(target, (TARGET_RAN,), Some(address))
}

/// The child must have refused with exit code 2 and said why.
fn assert_refused(what: &str, (status, stderr): (ExitStatus, String), needle: &str) {
    assert_eq!(
        status.code(),
        Some(2),
        "{what}: expected a refusal (exit 2), got {status}; stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "{what}: {stderr}");
}

#[test]
fn a_genuine_payload_runs_its_target() {
    // The harness works: the same payload that is refused below in other
    // wrappings runs its target here.
    let (status, stderr) = launch(&sealed(&genuine()));
    assert_eq!(status.code(), Some(TARGET_RAN), "{stderr}");
}

#[test]
fn a_plain_file_or_a_pipe_is_not_a_payload() {
    let path = std::env::temp_dir().join(format!("procq-payload-{}", std::process::id()));
    std::fs::write(&path, genuine()).unwrap();
    let file: OwnedFd = std::fs::File::open(&path).unwrap().into();
    std::fs::remove_file(&path).unwrap();
    assert_refused("plain file", launch(&file), "not a sealed procq memfd");
    let (pipe, _w) = rustix::pipe::pipe().unwrap();
    assert_refused("pipe", launch(&pipe), "not a sealed procq memfd");
}

#[test]
fn an_unsealed_memfd_is_not_a_payload() {
    let fd =
        rustix::fs::memfd_create("procq-process-args", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::io::write(&fd, &genuine()).unwrap();
    assert_refused("unsealed memfd", launch(&fd), "seals");
}

#[test]
fn an_offset_to_a_function_or_into_one_is_refused_before_any_jump() {
    let decoy = decoy as *const () as usize;
    for (what, addr) in [
        ("a function", decoy),
        ("the middle of a function", decoy + 1),
        ("the middle of a function", decoy + 4),
        ("the middle of a function", decoy + 16),
        ("the target function itself", target as *const () as usize),
    ] {
        assert_refused(
            what,
            launch(&sealed(&forged(addr))),
            "not a procq entry point",
        );
    }
}

#[test]
fn random_offsets_are_refused() {
    // xorshift, seeded per run: addresses anywhere, and near this image.
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let here = decoy as *const () as usize;
    for i in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let addr = if i % 2 == 0 {
            x as usize
        } else {
            here.wrapping_add((x % (8 << 20)) as usize)
                .wrapping_sub(4 << 20)
        };
        assert_refused(
            &format!("address {addr:#x}"),
            launch(&sealed(&forged(addr))),
            "not a procq entry point",
        );
    }
}

#[test]
fn a_setuid_program_refuses_the_marker() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to make a setuid copy (CI runs as root)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    // A setuid-root copy of this binary, run by uid 65534: AT_SECURE. It
    // needs a file system that honours the setuid bit.
    let Some(base) = [
        std::env::temp_dir(),
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    ]
    .into_iter()
    .find(|d| {
        rustix::fs::statvfs(d.as_path())
            .is_ok_and(|v| !v.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID))
    }) else {
        eprintln!("skipped: no temporary directory without nosuid");
        return;
    };
    let dir = base.join(format!("procq-setuid-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("child");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let payload = sealed(&genuine());
    let p = payload.as_raw_fd();
    let mut cmd = Command::new(&exe);
    cmd.args([
        "__procq_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(MARKER, format!("2:{p}:{p}"))
    .uid(65534)
    .gid(65534)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: only fcntl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(p, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output();
    std::fs::remove_dir_all(&dir).unwrap();
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: uid 65534 cannot execute {}: {e}", exe.display());
            return;
        }
        other => other.unwrap(),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_refused("setuid", (out.status, stderr), "AT_SECURE");
}
