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
                if matches!(f.system, System::Procq | System::Crossbeam) {
                    id += if f.maxsize > 0 {
                        "/bounded"
                    } else {
                        "/unbounded"
                    };
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
    let flow = |system, n, item, maxsize, batch| {
        Case::Throughput(Flow {
            system,
            producers: n,
            consumers: n,
            item,
            maxsize,
            batch,
        })
    };
    for item in Item::ALL {
        for n in [1, 2, 4] {
            for maxsize in [BOUND, 0] {
                cases.push(flow(System::Procq, n, item, maxsize, 1));
            }
        }
        cases.push(flow(System::Socket, 1, item, 0, 1));
        cases.push(flow(System::IpcChannel, 1, item, 0, 1));
        for maxsize in [BOUND, 0] {
            cases.push(flow(System::Crossbeam, 1, item, maxsize, 1));
        }
        cases.push(flow(System::Memcpy, 1, item, 0, 1));
    }
    for maxsize in [BOUND, 0] {
        cases.push(flow(System::Procq, 1, Item::U64, maxsize, BATCH));
    }
    for loaded in [false, true] {
        for system in [System::Procq, System::Socket] {
            cases.push(Case::Latency { system, loaded });
        }
    }
    cases.push(Case::Latency {
        system: System::Crossbeam,
        loaded: false,
    });
    cases.push(Case::Memory);
    cases
}
