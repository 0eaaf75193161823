//! The worker side of ipmpsc (feature `ipmpsc`), measured the way
//! `design-notes.md` ("Side by side with the peers") describes: the
//! consumer takes ownership of every item (a `u64`, or a fresh `Vec<u8>`),
//! checks it and drops it, as procq's `get` hands one over; the producer
//! serializes from one reused buffer; bincode encodes `Vec<u8>` either
//! generically (element by element) or through `serde_bytes`.

use ipmpsc::{Receiver, Sender, SharedRingBuffer};

use super::protocol::{
    expect_echo, monotonic_ns, ping_pong, process_cpu_ns, say, say_ponger_done, wait_go, Bincode,
    Result,
};
use crate::item::Item;

/// Size of an ipmpsc ring holding `bound` items of this kind.
pub(crate) fn ipmpsc_ring_bytes(item: Item, bound: usize) -> u32 {
    // bincode: 8-byte length before a byte string; ipmpsc adds its own
    // 4-byte frame header and aligns records.
    let record = item.nominal_bytes() as usize + 32;
    (record * bound).clamp(4096, u32::MAX as usize / 2) as u32
}

/// Consumer: creates the ring at `path` (so it exists before any producer
/// opens it), then receives `items`.
pub(crate) fn ipmpsc_consume(
    path: &str,
    item: Item,
    items: u64,
    bound: usize,
    enc: Bincode,
) -> Result<()> {
    let rx = Receiver::new(SharedRingBuffer::create(
        path,
        ipmpsc_ring_bytes(item, bound),
    )?);
    say("ready")?;
    wait_go()?;
    let mut sum = 0u64;
    for _ in 0..items {
        sum = sum.wrapping_add(match (item, enc) {
            (Item::U64, _) => rx.recv::<u64>()?,
            (Item::Bytes(_), Bincode::Generic) => {
                std::hint::black_box(rx.recv::<Vec<u8>>()?).len() as u64
            }
            (Item::Bytes(_), Bincode::Bytes) => {
                std::hint::black_box(rx.recv::<serde_bytes::ByteBuf>()?.into_vec()).len() as u64
            }
        });
    }
    say(&format!("done {} {sum}", monotonic_ns()))
}

/// Producer: opens the consumer's ring and sends `items`.
pub(crate) fn ipmpsc_produce(path: &str, item: Item, items: u64, enc: Bincode) -> Result<()> {
    let tx = Sender::new(SharedRingBuffer::open(path)?);
    say("ready")?;
    wait_go()?;
    match item {
        Item::U64 => {
            for i in 0..items {
                tx.send(&i)?;
            }
        }
        Item::Bytes(n) => {
            let payload = vec![item.fill_byte(); n];
            for _ in 0..items {
                match enc {
                    Bincode::Generic => tx.send(&payload)?,
                    Bincode::Bytes => tx.send(&serde_bytes::Bytes::new(&payload))?,
                }
            }
        }
    }
    say(&format!("done {}", monotonic_ns()))
}

/// Ping-pong over two ipmpsc rings: the ponger creates both.
pub(crate) fn ipmpsc_ponger(ping: &str, pong: &str, count: u64) -> Result<()> {
    let rx = Receiver::new(SharedRingBuffer::create(ping, 4096)?);
    let tx = Sender::new(SharedRingBuffer::create(pong, 4096)?);
    say("ready")?;
    wait_go()?;
    let cpu = process_cpu_ns();
    for _ in 0..count {
        tx.send(&rx.recv::<u64>()?)?;
    }
    say_ponger_done(cpu)
}

pub(crate) fn ipmpsc_pinger(ping: &str, pong: &str, warmup: u64, round_trips: u64) -> Result<()> {
    let tx = Sender::new(SharedRingBuffer::open(ping)?);
    let rx = Receiver::new(SharedRingBuffer::open(pong)?);
    say("ready")?;
    wait_go()?;
    ping_pong(warmup, round_trips, |i| {
        tx.send(&i)?;
        expect_echo(i, rx.recv::<u64>()?)
    })
}
