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
    /// A Unix stream socket, 4-byte length + item, one `write` per item.
    Socket,
    /// servo's ipc-channel (`IpcBytesSender`) between processes.
    IpcChannel,
    /// crossbeam-channel between two threads of one process.
    Crossbeam,
    /// `memcpy` of the item's bytes between two reused, page-aligned
    /// buffers, in one thread.
    Memcpy,
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::Procq => "procq",
            System::Socket => "socket",
            System::IpcChannel => "ipc-channel",
            System::Crossbeam => "crossbeam",
            System::Memcpy => "memcpy",
        })
    }
}
