//! The cases of the suite: what each one measures, its id, and the order
//! they run in.

use crate::item::Item;
use crate::system::System;

/// Bound of the bounded queues and channels (the issue's `maxsize`).
pub(crate) const BOUND: usize = 1024;
/// Items per `put_many` / `get_many` call in the batch cases.
pub(crate) const BATCH: usize = 256;
/// Busy load processes in the oversubscribed latency cases (2 producers
/// and 2 consumers on another queue: more than this machine's cores).
pub(crate) const LOAD_PROCESSES: usize = 4;

/// Many-to-few topologies (producers, consumers) measured for procq with
/// the bounded queue, as faster-fifo's README reports them.
pub(crate) const TOPOLOGIES: [(usize, usize); 3] = [(4, 1), (1, 4), (8, 8)];

/// Item sizes of the zero-copy loan cases (`RawQueue::put_with` /
/// `get_with`): the large items, where a copy costs most.
pub(crate) const ZERO_COPY_ITEMS: [Item; 2] = [Item::Bytes(65536), Item::Bytes(1 << 20)];

/// Bound of the peers' buffers, in items: [`BOUND`] for small items, less
/// for large ones (16 MiB at most in flight, at least 16 items), as the
/// peers' own benchmarks size them.
pub(crate) fn peer_bound(item: Item) -> usize {
    ((16 << 20) / item.nominal_bytes() as usize).clamp(16, BOUND)
}

/// Whether ipmpsc is built in (feature `ipmpsc`, on by default).
pub(crate) const IPMPSC: bool = cfg!(feature = "ipmpsc");
/// Whether iceoryx2 is built in (feature `iceoryx2`, off by default).
pub(crate) const ICEORYX2: bool = cfg!(feature = "iceoryx2");

/// One throughput configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flow {
    pub(crate) system: System,
    pub(crate) producers: usize,
    pub(crate) consumers: usize,
    pub(crate) item: Item,
    /// 0 = unbounded.
    pub(crate) maxsize: usize,
    /// 1 = `put`/`get`, more = `put_many`/`get_many` of that many.
    pub(crate) batch: usize,
}

/// One case of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    Throughput(Flow),
    Latency { system: System, loaded: bool },
    Memory,
}

impl Case {
    pub(crate) fn id(&self) -> String {
        match self {
            Case::Throughput(f) => {
                let kind = if f.batch > 1 { "batch" } else { "throughput" };
                let mut id = format!(
                    "{kind}/{}/{}p{}c/{}",
                    f.system,
                    f.producers,
                    f.consumers,
                    f.item.id()
                );
                if matches!(
                    f.system,
                    System::Procq | System::ProcqZeroCopy | System::Crossbeam
                ) {
                    id += if f.maxsize > 0 {
                        "/bounded"
                    } else {
                        "/unbounded"
                    };
                    if f.maxsize > 0 && f.maxsize != BOUND && f.system == System::Procq {
                        // The row at the peers' bound (see `all_cases`).
                        id += &f.maxsize.to_string();
                    }
                }
                if f.batch > 1 {
                    id += &format!("/{}", f.batch);
                }
                id
            }
            Case::Latency { system, loaded } => format!(
                "latency/{system}/{}",
                if *loaded { "oversubscribed" } else { "idle" }
            ),
            Case::Memory => "memory/procq".to_owned(),
        }
    }
}

/// Every case, in run order.
pub(crate) fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let flow = |system, (producers, consumers), item, maxsize, batch| {
        Case::Throughput(Flow {
            system,
            producers,
            consumers,
            item,
            maxsize,
            batch,
        })
    };
    for item in Item::ALL {
        for n in [1, 2, 4] {
            for maxsize in [BOUND, 0] {
                cases.push(flow(System::Procq, (n, n), item, maxsize, 1));
            }
        }
        for pc in TOPOLOGIES {
            cases.push(flow(System::Procq, pc, item, BOUND, 1));
        }
        if peer_bound(item) < BOUND {
            // The side-by-side comparison: procq with the peers' bound, so
            // both keep the same bytes in flight (a 1 GiB ring at maxsize
            // 1024 makes every copy miss the caches; the peers hold 16).
            cases.push(flow(System::Procq, (1, 1), item, peer_bound(item), 1));
        }
        if ZERO_COPY_ITEMS.contains(&item) {
            // Bounded as the peers' buffers: the same bytes in flight as
            // iceoryx2's zero-copy row, which it is compared with.
            cases.push(flow(
                System::ProcqZeroCopy,
                (1, 1),
                item,
                peer_bound(item),
                1,
            ));
        }
        cases.push(flow(System::Socket, (1, 1), item, 0, 1));
        cases.push(flow(System::IpcChannel, (1, 1), item, 0, 1));
        let bound = peer_bound(item);
        if IPMPSC {
            cases.push(flow(System::Ipmpsc, (1, 1), item, bound, 1));
            // ipmpsc is multi-producer: its side of the 4P/1C comparison.
            cases.push(flow(System::Ipmpsc, (4, 1), item, bound, 1));
            if item != Item::U64 {
                cases.push(flow(System::IpmpscBytes, (1, 1), item, bound, 1));
            }
        }
        if ICEORYX2 {
            cases.push(flow(System::Iceoryx2, (1, 1), item, bound, 1));
            if item != Item::U64 {
                cases.push(flow(System::Iceoryx2ZeroCopy, (1, 1), item, bound, 1));
            }
        }
        for maxsize in [BOUND, 0] {
            cases.push(flow(System::Crossbeam, (1, 1), item, maxsize, 1));
        }
        cases.push(flow(System::Memcpy, (1, 1), item, 0, 1));
    }
    for maxsize in [BOUND, 0] {
        cases.push(flow(System::Procq, (1, 1), Item::U64, maxsize, BATCH));
    }
    for loaded in [false, true] {
        for system in [System::Procq, System::Socket] {
            cases.push(Case::Latency { system, loaded });
        }
    }
    for (system, built) in [(System::Ipmpsc, IPMPSC), (System::Iceoryx2, ICEORYX2)] {
        if built {
            cases.push(Case::Latency {
                system,
                loaded: false,
            });
        }
    }
    cases.push(Case::Latency {
        system: System::Crossbeam,
        loaded: false,
    });
    cases.push(Case::Memory);
    cases
}

/// Ids of every case, in run order.
pub(crate) fn case_ids() -> Vec<String> {
    all_cases().iter().map(Case::id).collect()
}
