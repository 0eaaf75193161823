//! The items the suite moves.

use serde::{Deserialize, Serialize};

/// An item type as the suite sends it.
///
/// ```
/// use procq_bench::Item;
/// assert_eq!(Item::U64.label(), "8 B");
/// assert_eq!(Item::Bytes(1 << 20).label(), "1 MiB");
/// assert_eq!(Item::Bytes(100).nominal_bytes(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// A `u64` (postcard: a varint of 1 to 10 bytes; counted as 8 B).
    U64,
    /// A `Vec<u8>` of this many bytes (postcard: varint length + bytes).
    Bytes(usize),
}

impl Item {
    /// The item sizes of the suite, smallest first.
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::ALL.len(), 5);
    /// ```
    pub const ALL: [Item; 5] = [
        Item::U64,
        Item::Bytes(100),
        Item::Bytes(4096),
        Item::Bytes(65536),
        Item::Bytes(1 << 20),
    ];

    /// Payload bytes per item, as counted in bytes/s (8 for a `u64`).
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::U64.nominal_bytes(), 8);
    /// ```
    pub fn nominal_bytes(self) -> u64 {
        match self {
            Item::U64 => 8,
            Item::Bytes(n) => n as u64,
        }
    }

    /// Human-readable size: `8 B`, `100 B`, `4 KiB`, `64 KiB`, `1 MiB`.
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::Bytes(4096).label(), "4 KiB");
    /// ```
    pub fn label(self) -> String {
        let n = self.nominal_bytes();
        if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            format!("{} MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            format!("{} KiB", n >> 10)
        } else {
            format!("{n} B")
        }
    }

    /// The size as it appears in case ids: `8B`, `100B`, `4KiB`, ...
    ///
    /// ```
    /// assert_eq!(procq_bench::Item::Bytes(65536).id(), "64KiB");
    /// ```
    pub fn id(self) -> String {
        self.label().replace(' ', "")
    }

    /// Byte value filling a `Bytes` payload (anything but zero, so that no
    /// page of it can stay a shared zero page).
    pub(crate) fn fill_byte(self) -> u8 {
        0xa5
    }
}
