//! Durable quota usage: what every data plane reported, per API key, plan and quota period.
//!
//! Each report is appended to `usage.log` and fsynced before it is acknowledged, so an
//! acknowledged report is never lost. Every record carries `(instance, sequence)`: a data
//! plane that resends a report whose answer it missed is counted once. When the log grows past
//! [`COMPACT_AT`] bytes, the whole usage is written to `usage.json` (atomically) and the log is
//! emptied; records replayed on top of a snapshot that already holds them are skipped by the
//! same sequence check, so a crash between the two steps double-counts nothing.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Log size at which the usage is snapshotted and the log emptied.
pub const COMPACT_AT: u64 = 4 << 20;
/// Periods that started longer ago than this are dropped at compaction (AWS keeps 90 days).
pub const RETAIN_S: i64 = 120 * 86_400;
/// The instance name of adjustments made through `controlctl`.
const OPERATOR: &str = "controlctl";

/// `(key, plan, period start)`.
pub type PeriodKey = (String, String, i64);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests the data planes admitted.
    pub used: u64,
    /// Resets and grants (negative: requests given back).
    pub adjustment: i64,
}

impl Counts {
    pub fn effective(&self) -> i64 {
        self.used as i64 + self.adjustment
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    Report { instance: String, sequence: u64, entries: Vec<(String, String, i64, u64)> },
    Adjust { instance: String, sequence: u64, key: String, plan: String, period_start: i64, delta: i64 },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    periods: Vec<(PeriodKey, Counts)>,
    /// Last sequence applied per instance.
    sequences: HashMap<String, u64>,
}

pub struct UsageStore {
    dir: PathBuf,
    log: File,
    log_bytes: u64,
    periods: BTreeMap<PeriodKey, Counts>,
    sequences: HashMap<String, u64>,
}

impl UsageStore {
    /// Loads the snapshot and replays the log. A line that is not a record (a torn append:
    /// a crash, or a full disk, left part of it) was never acknowledged and is skipped, and
    /// only it: the records after it were acknowledged and count. If one was skipped, the log
    /// is rewritten (durably) with the whole records only.
    pub fn open(dir: &Path) -> Result<UsageStore, String> {
        let snapshot_path = dir.join("usage.json");
        let snapshot: Snapshot = match std::fs::read(&snapshot_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is corrupt: {e}", snapshot_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
            Err(e) => return Err(format!("{}: {e}", snapshot_path.display())),
        };
        let log_path = dir.join("usage.log");
        let log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut store = UsageStore {
            dir: dir.to_path_buf(),
            log_bytes: 0,
            log: log.try_clone().map_err(|e| e.to_string())?,
            periods: snapshot.periods.into_iter().collect(),
            sequences: snapshot.sequences,
        };
        // The whole records, to rewrite the log with if a torn one is found.
        let mut whole = Vec::new();
        let mut torn = 0;
        for line in BufReader::new(log).split(b'\n') {
            let line = line.map_err(|e| format!("{}: {e}", log_path.display()))?;
            match serde_json::from_slice::<Record>(&line) {
                Ok(record) => {
                    store.apply(record);
                    whole.extend_from_slice(&line);
                    whole.push(b'\n');
                }
                Err(_) => torn += 1,
            }
        }
        if torn > 0 {
            log::warn!("skipped {torn} torn record(s) in {}; rewriting it", log_path.display());
            let rewrite =
                |e: std::io::Error| format!("{}: rewriting without torn records: {e}", log_path.display());
            proto::durable_file::write(&log_path, &whole).map_err(rewrite)?;
            store.log = OpenOptions::new().append(true).open(&log_path).map_err(rewrite)?;
        }
        store.log_bytes = whole.len() as u64;
        Ok(store)
    }

    /// Applies a record unless its sequence was already applied; true if it was new.
    fn apply(&mut self, record: Record) -> bool {
        let (instance, sequence) = match &record {
            Record::Report { instance, sequence, .. } | Record::Adjust { instance, sequence, .. } => {
                (instance.clone(), *sequence)
            }
        };
        let last = self.sequences.entry(instance).or_insert(0);
        if sequence <= *last {
            return false;
        }
        *last = sequence;
        match record {
            Record::Report { entries, .. } => {
                for (key, plan, start, requests) in entries {
                    self.periods.entry((key, plan, start)).or_default().used += requests;
                }
            }
            Record::Adjust { key, plan, period_start, delta, .. } => {
                self.periods.entry((key, plan, period_start)).or_default().adjustment += delta;
            }
        }
        true
    }

    /// Appends and fsyncs the record, then applies it. If the write fails (a full disk can
    /// leave part of it), the log is cut back to its last whole record before the error is
    /// returned, so the next record never shares a line with a torn one; nothing is applied.
    fn append(&mut self, record: Record) -> Result<(), String> {
        let mut line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let written = self.log.write_all(&line).and_then(|()| self.log.sync_data());
        if let Err(e) = written {
            let rolled_back = self.log.set_len(self.log_bytes).and_then(|()| self.log.sync_data());
            return Err(match rolled_back {
                Ok(()) => format!("usage log: {e}"),
                // The torn bytes stay; the next open skips exactly them.
                Err(again) => format!("usage log: {e} (and cutting the torn record failed: {again})"),
            });
        }
        self.log_bytes += line.len() as u64;
        self.apply(record);
        if self.log_bytes >= COMPACT_AT {
            if let Err(e) = self.compact(now_s()) {
                log::warn!("usage compaction failed (the log keeps growing): {e}");
            }
        }
        Ok(())
    }

    /// Records a data plane's report (once per `(instance, sequence)`).
    pub fn report(
        &mut self,
        instance: &str,
        sequence: u64,
        entries: Vec<(String, String, i64, u64)>,
    ) -> Result<(), String> {
        let entries: Vec<_> = entries.into_iter().filter(|e| e.3 > 0).collect();
        if sequence == 0 || entries.is_empty() || self.sequences.get(instance).is_some_and(|s| sequence <= *s)
        {
            return Ok(());
        }
        self.append(Record::Report { instance: instance.to_string(), sequence, entries })
    }

    /// Adds `delta` to a period's adjustment.
    pub fn adjust(&mut self, key: &str, plan: &str, period_start: i64, delta: i64) -> Result<(), String> {
        let sequence = self.sequences.get(OPERATOR).copied().unwrap_or(0) + 1;
        let (key, plan) = (key.to_string(), plan.to_string());
        self.append(Record::Adjust { instance: OPERATOR.into(), sequence, key, plan, period_start, delta })
    }

    pub fn counts(&self, key: &str, plan: &str, period_start: i64) -> Counts {
        self.periods.get(&(key.to_string(), plan.to_string(), period_start)).copied().unwrap_or_default()
    }

    /// Every stored period, in key, plan, start order.
    pub fn periods(&self) -> impl Iterator<Item = (&PeriodKey, &Counts)> {
        self.periods.iter()
    }

    /// Per key and plan, the latest stored period and its effective usage.
    pub fn latest(&self) -> Vec<(PeriodKey, i64)> {
        let mut out: Vec<(PeriodKey, i64)> = Vec::new();
        for ((key, plan, start), counts) in &self.periods {
            match out.last_mut() {
                Some(((k, p, s), e)) if k == key && p == plan => (*s, *e) = (*start, counts.effective()),
                _ => out.push(((key.clone(), plan.clone(), *start), counts.effective())),
            }
        }
        out
    }

    /// Writes everything to `usage.json` and empties the log, dropping periods older than
    /// [`RETAIN_S`].
    pub fn compact(&mut self, now_s: i64) -> Result<(), String> {
        self.periods.retain(|(_, _, start), _| *start >= now_s - RETAIN_S);
        let snapshot = Snapshot {
            periods: self.periods.iter().map(|(k, c)| (k.clone(), *c)).collect(),
            sequences: self.sequences.clone(),
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| e.to_string())?;
        proto::durable_file::write(&self.dir.join("usage.json"), &bytes).map_err(|e| e.to_string())?;
        self.log.set_len(0).and_then(|()| self.log.sync_all()).map_err(|e| e.to_string())?;
        self.log_bytes = 0;
        Ok(())
    }
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("usage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entry(n: u64) -> Vec<(String, String, i64, u64)> {
        vec![("alice".into(), "basic".into(), 100, n)]
    }

    #[test]
    fn a_resent_report_counts_once_and_everything_survives_a_reopen() {
        let d = dir("resend");
        let mut store = UsageStore::open(&d).unwrap();
        store.report("dp-1", 1, entry(5)).unwrap();
        store.report("dp-1", 1, entry(5)).unwrap();
        store.report("dp-2", 1, entry(7)).unwrap();
        store.adjust("alice", "basic", 100, -2).unwrap();
        assert_eq!(store.counts("alice", "basic", 100), Counts { used: 12, adjustment: -2 });
        drop(store);
        let store = UsageStore::open(&d).unwrap();
        assert_eq!(store.counts("alice", "basic", 100), Counts { used: 12, adjustment: -2 });
        assert_eq!(store.latest(), vec![(("alice".into(), "basic".into(), 100), 10)]);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_later_appends_stay_readable() {
        let d = dir("torn");
        let mut store = UsageStore::open(&d).unwrap();
        store.report("dp", 1, entry(3)).unwrap();
        drop(store);
        let mut log = OpenOptions::new().append(true).open(d.join("usage.log")).unwrap();
        log.write_all(br#"{"record":"report","inst"#).unwrap();
        let mut store = UsageStore::open(&d).unwrap();
        store.report("dp", 2, entry(4)).unwrap();
        drop(store);
        assert_eq!(UsageStore::open(&d).unwrap().counts("alice", "basic", 100).used, 7);
    }

    #[test]
    fn a_torn_record_inside_the_log_costs_only_itself() {
        // What a full disk left before the append that rolls back existed: a partial record
        // with a whole one after it on the same line, then more whole ones.
        let d = dir("torn-middle");
        let mut store = UsageStore::open(&d).unwrap();
        store.report("dp", 1, entry(3)).unwrap();
        drop(store);
        let good = |sequence: u64, n: u64| {
            let record = Record::Report { instance: "dp".into(), sequence, entries: entry(n) };
            let mut line = serde_json::to_vec(&record).unwrap();
            line.push(b'\n');
            line
        };
        let mut log = OpenOptions::new().append(true).open(d.join("usage.log")).unwrap();
        log.write_all(br#"{"record":"report","inst"#).unwrap();
        log.write_all(&good(2, 4)).unwrap();
        log.write_all(&good(3, 5)).unwrap();
        log.write_all(&good(4, 6)).unwrap();
        drop(log);
        let store = UsageStore::open(&d).unwrap();
        // Sequence 2 shared the torn line and is lost with it; 3 and 4 after it count.
        assert_eq!(store.counts("alice", "basic", 100).used, 3 + 5 + 6);
        let rewritten = std::fs::read_to_string(d.join("usage.log")).unwrap();
        assert_eq!(rewritten.lines().count(), 3, "only whole records are left: {rewritten}");
        drop(store);
        assert_eq!(UsageStore::open(&d).unwrap().counts("alice", "basic", 100).used, 14);
    }

    #[test]
    fn a_failed_append_on_a_full_disk_is_cut_back_and_loses_nothing_acknowledged() {
        // A 64 KiB tmpfs, filled up: needs root (CI and the development machines run as root).
        let d = dir("full-disk");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&d)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "mounting a tmpfs at {} failed (this test needs root)", d.display());
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _unmount = Unmount(d.clone());
        let mut store = UsageStore::open(&d).unwrap();
        let filler = d.join("filler");
        let _ = std::fs::write(&filler, vec![0u8; 60 * 1024]);
        let mut acknowledged = 0u64;
        let mut refused = 0;
        for sequence in 1..=200u64 {
            match store.report("dp", sequence, entry(sequence)) {
                Ok(()) => acknowledged += sequence,
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 0, "the disk never filled up");
        // Room again: later appends work and land on lines of their own.
        std::fs::remove_file(&filler).unwrap();
        store.report("dp", 201, entry(201)).unwrap();
        acknowledged += 201;
        drop(store);
        let store = UsageStore::open(&d).unwrap();
        assert_eq!(store.counts("alice", "basic", 100).used, acknowledged);
    }

    #[test]
    fn compaction_keeps_counts_and_a_replayed_log_adds_nothing() {
        let d = dir("compact");
        let mut store = UsageStore::open(&d).unwrap();
        store.report("dp", 1, entry(3)).unwrap();
        store.report("dp", 2, vec![("old".into(), "basic".into(), -RETAIN_S - 1, 9)]).unwrap();
        let log_before = std::fs::read(d.join("usage.log")).unwrap();
        store.compact(0).unwrap();
        // A crash after the snapshot but before the log was emptied: the old log replays.
        std::fs::write(d.join("usage.log"), log_before).unwrap();
        let store = UsageStore::open(&d).unwrap();
        assert_eq!(store.counts("alice", "basic", 100).used, 3);
        assert_eq!(store.counts("old", "basic", -RETAIN_S - 1).used, 0, "expired periods are dropped");
    }
}
