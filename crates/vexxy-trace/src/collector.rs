//! One session's records as they arrive from the ring buffer, before the
//! maps are read: path announcements, failed-open names, the process tree,
//! and the evidence clock the adaptive window watches.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexxy_model::ProcessRecord;

use crate::skel::types::event_kind;
use crate::wire;
use crate::EvidenceMark;

/// Shared between the hub thread (writer) and [`crate::Tracer::evidence`].
#[derive(Debug)]
pub(crate) struct EvidenceClock {
    origin: Instant,
    count: AtomicU64,
    /// Nanoseconds after `origin` of the last sighting, plus one (0: none).
    last: AtomicU64,
}

impl EvidenceClock {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            count: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }

    pub(crate) fn saw(&self) {
        let at = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        self.last.store(at, Ordering::Release);
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn mark(&self) -> EvidenceMark {
        let count = self.count.load(Ordering::Acquire);
        let last = match self.last.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.origin + Duration::from_nanos(n - 1)),
        };
        EvidenceMark { count, last }
    }
}

/// Process events and first sightings of one session.
#[derive(Debug)]
pub(crate) struct Collector {
    evidence: Arc<EvidenceClock>,
    pub(crate) paths: HashMap<wire::FileKey, (String, bool)>,
    pub(crate) failed_names: HashMap<u64, String>,
    pub(crate) executed: BTreeMap<String, u64>,
    pub(crate) processes: BTreeMap<u32, ProcessRecord>,
    pub(crate) malformed: u64,
}

impl Collector {
    pub(crate) fn new(evidence: Arc<EvidenceClock>) -> Self {
        Self {
            evidence,
            paths: HashMap::new(),
            failed_names: HashMap::new(),
            executed: BTreeMap::new(),
            processes: BTreeMap::new(),
            malformed: 0,
        }
    }

    /// Takes one decoded record of this session.
    pub(crate) fn on_event(&mut self, ev: &wire::Event) {
        let (ns_pid, ns_ppid) = (ev.header.ns_pid, ev.header.ns_ppid);
        match ev.kind() {
            event_kind::EV_PATH => {
                self.evidence.saw();
                self.paths
                    .insert(ev.file_key(), (ev.path(), ev.truncated()));
            }
            event_kind::EV_FAILED => {
                self.evidence.saw();
                self.failed_names.insert(ev.header.a, ev.name());
            }
            event_kind::EV_NET | event_kind::EV_SYMBOL => self.evidence.saw(),
            event_kind::EV_EXEC => {
                self.evidence.saw();
                let path = ev.path();
                *self.executed.entry(path.clone()).or_default() += 1;
                let proc = self.process(ns_pid, ns_ppid);
                proc.execs.push(path);
                proc.comm.clone_from(&ev.comm);
            }
            event_kind::EV_FORK => {
                let proc = self.process(ns_pid, ns_ppid);
                proc.comm.clone_from(&ev.comm);
            }
            event_kind::EV_EXIT => {
                let proc = self.process(ns_pid, ns_ppid);
                // wait(2) status: signal in the low 7 bits, code above.
                let status = ev.header.code;
                proc.exit_code = Some(if status & 0x7f != 0 {
                    128 + (status & 0x7f)
                } else {
                    (status >> 8) & 0xff
                });
            }
            _ => self.malformed += 1,
        }
    }

    fn process(&mut self, pid: u32, ppid: u32) -> &mut ProcessRecord {
        let proc = self.processes.entry(pid).or_insert_with(|| ProcessRecord {
            pid,
            ppid,
            execs: Vec::new(),
            comm: String::new(),
            exit_code: None,
        });
        if proc.ppid == 0 {
            proc.ppid = ppid;
        }
        proc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_evidence_clock_counts_and_dates_sightings() {
        let clock = EvidenceClock::new();
        assert_eq!(clock.mark(), EvidenceMark::NONE);
        let before = Instant::now();
        clock.saw();
        clock.saw();
        let mark = clock.mark();
        assert_eq!(mark.count, 2);
        let last = mark.last.expect("a sighting");
        assert!(last + Duration::from_millis(1) >= before && last <= Instant::now());
    }
}
