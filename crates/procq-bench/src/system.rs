//! What carries the items: procq and each baseline.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What is being measured.
///
/// ```
/// assert_eq!(procq_bench::System::IpcChannel.to_string(), "ipc-channel");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// procq's typed `Queue<T>` between processes.
    Procq,
    /// procq's zero-copy loans: `RawQueue::put_with` writes each item in
    /// place in shared memory, `RawQueue::get_with` reads it in place.
    ProcqZeroCopy,
    /// A Unix stream socket, 4-byte length + item, one `write` per item.
    Socket,
    /// servo's ipc-channel (`IpcBytesSender`) between processes.
    IpcChannel,
    /// crossbeam-channel between two threads of one process.
    Crossbeam,
    /// `memcpy` of the item's bytes between two reused, page-aligned
    /// buffers, in one thread.
    Memcpy,
    /// ipmpsc (shared-memory ring, MPSC, bincode): `u64`, or `Vec<u8>`
    /// through serde's generic sequence.
    Ipmpsc,
    /// ipmpsc with `serde_bytes` for the `Vec<u8>` items.
    IpmpscBytes,
    /// iceoryx2 publish-subscribe, busy-polling subscriber that copies each
    /// sample out into an owned value.
    Iceoryx2,
    /// iceoryx2 as above, reading each sample in place (zero-copy).
    Iceoryx2ZeroCopy,
}

impl System {
    /// Whether the system is one of the shared-memory peers (built with the
    /// `peers` feature).
    ///
    /// ```
    /// assert!(procq_bench::System::Iceoryx2.is_peer());
    /// assert!(!procq_bench::System::Socket.is_peer());
    /// ```
    pub fn is_peer(self) -> bool {
        matches!(
            self,
            System::Ipmpsc | System::IpmpscBytes | System::Iceoryx2 | System::Iceoryx2ZeroCopy
        )
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::Procq => "procq",
            System::ProcqZeroCopy => "procq-zero-copy",
            System::Socket => "socket",
            System::IpcChannel => "ipc-channel",
            System::Crossbeam => "crossbeam",
            System::Memcpy => "memcpy",
            System::Ipmpsc => "ipmpsc",
            System::IpmpscBytes => "ipmpsc-bytes",
            System::Iceoryx2 => "iceoryx2",
            System::Iceoryx2ZeroCopy => "iceoryx2-zero-copy",
        })
    }
}
