//! Helpers shared by the CLI test binaries: run the real `procq` binary,
//! name test queues, remove them however a test ends.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub fn procq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(args)
        .output()
        .expect("run procq")
}

pub fn procq_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_procq"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run procq");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn unique(tag: &str) -> String {
    format!("cli-{tag}-{}", std::process::id())
}

/// Removes a persistent test queue however the test ends.
pub struct Cleanup(pub String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = procq::remove(&self.0);
    }
}
