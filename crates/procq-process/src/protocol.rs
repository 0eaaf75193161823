//! The wire protocol between a parent and the child it started: the marker
//! variable, the payload header, the frames of the result pipe and the exit
//! codes. Both sides import it; it imports neither.
//!
//! ```text
//! environment   PROCQ_PROCESS_CHILD=<PROTOCOL>:<payload fd>:<result fd>
//! payload fd    sealed memfd: postcard(Header) ++ postcard(args)
//! result fd     pipe, child → parent: frames of tag (1 byte), length
//!               (8 bytes LE), body; Started, then one of Returned,
//!               Panicked, Failed (or NotDispatched from a child whose main
//!               forgot init)
//! ```

use serde::{Deserialize, Serialize};

/// Environment variable that marks a re-executed child:
/// `<PROTOCOL>:<payload fd>:<result fd>`.
pub(crate) const MARKER: &str = "PROCQ_PROCESS_CHILD";
/// Version of the marker and payload format.
pub(crate) const PROTOCOL: u32 = 2;

/// Exit code of a child whose target panicked (Rust's convention).
pub(crate) const EXIT_PANIC: i32 = 101;
/// Exit code of a child that could not run its target.
pub(crate) const EXIT_FAILED: i32 = 2;

/// The arguments are decoded: the parent may drop the handles it kept.
pub(crate) const FRAME_STARTED: u8 = 1;
/// The target returned; the body is its encoded return value.
pub(crate) const FRAME_RETURNED: u8 = 2;
/// The target panicked; the body is the message with its location.
pub(crate) const FRAME_PANICKED: u8 = 3;
/// The target could not run; the body says why.
pub(crate) const FRAME_FAILED: u8 = 4;
/// The child's `main` ran instead of its target (it forgot `init`).
pub(crate) const FRAME_NOT_DISPATCHED: u8 = 5;

/// Sent ahead of the arguments in the memfd.
#[derive(Serialize, Deserialize)]
pub(crate) struct Header {
    /// [`PROTOCOL`] of the parent.
    pub(crate) protocol: u32,
    /// Device and inode of the parent's executable.
    pub(crate) exe: (u64, u64),
    /// Offset of the child's dispatcher from the anchor (see
    /// `child::image_check`): equal in parent and child exactly when both
    /// run the same image.
    pub(crate) check: i64,
    /// Offset of the entry's descriptor from the anchor (see `entry`).
    pub(crate) descriptor: i64,
    /// Hash of the entry's type signature.
    pub(crate) signature: u64,
}

/// Device and inode of an executable, as [`Header::exe`] carries them.
pub(crate) fn exe_identity(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// The payload the parent writes: `header`, then the encoded arguments.
pub(crate) fn payload(header: &Header, args: &[u8]) -> Result<Vec<u8>, postcard::Error> {
    let mut payload = postcard::to_stdvec(header)?;
    payload.extend_from_slice(args);
    Ok(payload)
}

/// One frame of the result pipe: tag, length, body.
pub(crate) fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(9 + body.len());
    frame.push(tag);
    frame.extend_from_slice(&(body.len() as u64).to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Splits the complete frames off the front of `buf`: returns them and how
/// many bytes they took (a partial frame stays for the next read).
pub(crate) fn split_frames(buf: &[u8]) -> (Vec<(u8, Vec<u8>)>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 9 {
        let len = u64::from_le_bytes(buf[at + 1..at + 9].try_into().unwrap());
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| (at + 9).checked_add(l))
        else {
            break;
        };
        if end > buf.len() {
            break;
        }
        frames.push((buf[at], buf[at + 9..end].to_vec()));
        at = end;
    }
    (frames, at)
}

/// The payload and result descriptors named by a marker value, if it is one
/// of this protocol version.
pub(crate) fn parse_marker(marker: &std::ffi::OsStr) -> Option<(i32, i32)> {
    let text = marker.to_str()?;
    let mut parts = text.split(':');
    let version: u32 = parts.next()?.parse().ok()?;
    let payload = parts.next()?.parse().ok()?;
    let result = parts.next()?.parse().ok()?;
    (version == PROTOCOL && parts.next().is_none()).then_some((payload, result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_parsing_rejects_garbage() {
        assert_eq!(parse_marker("2:5:6".as_ref()), Some((5, 6)));
        for bad in ["", "2:5", "1:5:6", "2:5:6:7", "2:x:6", "a:b:c"] {
            assert_eq!(parse_marker(bad.as_ref()), None, "{bad}");
        }
    }

    #[test]
    fn frames_split_whole_and_keep_a_partial_one() {
        let mut buf = frame(FRAME_STARTED, &[]);
        buf.extend(frame(FRAME_RETURNED, b"abc"));
        let whole = buf.len();
        buf.extend(&frame(FRAME_FAILED, b"xyz")[..5]);
        let (frames, used) = split_frames(&buf);
        assert_eq!(
            frames,
            vec![(FRAME_STARTED, vec![]), (FRAME_RETURNED, b"abc".to_vec())]
        );
        assert_eq!(used, whole);
        // A length that overflows is a partial frame forever, not a panic.
        let mut bad = vec![FRAME_RETURNED];
        bad.extend(u64::MAX.to_le_bytes());
        assert_eq!(split_frames(&bad), (vec![], 0));
    }
}
