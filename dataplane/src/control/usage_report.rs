//! Quota usage, off the shards: once a second, collect what the shards counted in each key's
//! quota cell, send it to the control plane, and set each cell's remote usage from the totals
//! the control plane answers with (what other data planes and earlier runs admitted).
//!
//! Nothing counted is dropped on the way. A report is resent unchanged until it is answered
//! (the control plane counts each `(instance, sequence)` once). Reports not yet answered are
//! written to `usage-pending.bin` in the state directory whenever there are any, and on
//! shutdown; the next run sends them first and counts them against the quota meanwhile. So a
//! crash loses at most the requests of the last second, and a clean stop loses none. Without
//! a control plane (`--table`), the pending file is the only record, and quotas persist
//! through it when a state directory is given.

use crate::limits::quota;
use crate::table::{CurrentTable, LoadedTable};
use prost::Message;
use proto::grpc;
use proto::quota::Rule;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often usage is collected and reported.
const PENDING_FILE: &str = "usage-pending.bin";

/// `(key, plan, period start)`.
type PeriodKey = (String, String, i64);

/// A quota cell the reporter follows.
struct Tracked {
    cell: Arc<quota::Cell>,
    key: String,
    plan: String,
    rule: Rule,
    /// Per slot: the period index and count already moved into `unsent`.
    collected: [(u64, u64); 2],
    /// Collections since the cell was last seen in the table; dropped after two, when
    /// shards still on an older table can no longer count into it.
    missing: u8,
}

struct Outgoing {
    report: grpc::UsageReport,
    /// From an earlier run: its counts are in no cell of this process.
    carried: bool,
    /// Sent at least once, so resent only as it is.
    maybe_sent: bool,
}

/// What has been counted, sent and acknowledged.
pub struct Ledger {
    instance: String,
    next_sequence: u64,
    tracked: HashMap<usize, Tracked>,
    unsent: BTreeMap<PeriodKey, i64>,
    outbox: VecDeque<Outgoing>,
    /// This process's counts the control plane holds.
    acked: HashMap<PeriodKey, i64>,
    /// Earlier runs' counts the control plane does not hold yet.
    carried: HashMap<PeriodKey, i64>,
    /// The control plane's last totals.
    totals: HashMap<PeriodKey, i64>,
}

fn to_entries(counts: BTreeMap<PeriodKey, i64>) -> Vec<grpc::UsageEntry> {
    let entry =
        |((key, plan, period_start), requests)| grpc::UsageEntry { key, plan, period_start, requests };
    counts.into_iter().map(entry).collect()
}

fn add(map: &mut HashMap<PeriodKey, i64>, entries: &[grpc::UsageEntry], sign: i64) {
    for e in entries {
        *map.entry((e.key.clone(), e.plan.clone(), e.period_start)).or_default() += sign * e.requests;
    }
}

impl Ledger {
    /// A ledger for a new run; `pending` is what an earlier run left unacknowledged.
    pub fn new(instance: String, pending: grpc::PendingUsage) -> Ledger {
        let mut ledger = Ledger {
            instance,
            next_sequence: 1,
            tracked: HashMap::new(),
            unsent: BTreeMap::new(),
            outbox: VecDeque::new(),
            acked: HashMap::new(),
            carried: HashMap::new(),
            totals: HashMap::new(),
        };
        let mut never_sent = BTreeMap::new();
        for p in pending.reports {
            let Some(report) = p.report else { continue };
            add(&mut ledger.carried, &report.entries, 1);
            if p.maybe_sent {
                ledger.outbox.push_back(Outgoing { report, carried: true, maybe_sent: true });
            } else {
                for e in report.entries {
                    *never_sent.entry((e.key, e.plan, e.period_start)).or_default() += e.requests;
                }
            }
        }
        if !never_sent.is_empty() {
            let report = ledger.new_report(never_sent);
            ledger.outbox.push_back(Outgoing { report, carried: true, maybe_sent: false });
        }
        ledger
    }

    fn new_report(&mut self, entries: BTreeMap<PeriodKey, i64>) -> grpc::UsageReport {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let entries = to_entries(entries);
        grpc::UsageReport { instance: self.instance.clone(), sequence, entries }
    }

    /// Moves what the shards counted since the last collection into `unsent`.
    pub fn collect(&mut self, table: Option<&LoadedTable>, now_s: i64) {
        self.tracked.values_mut().for_each(|t| t.missing = t.missing.saturating_add(1));
        if let Some(table) = table {
            for (index, cell) in table.quotas.iter().enumerate() {
                let (Some(cell), Some(rule)) = (cell, table.quota_rule(index as u32)) else { continue };
                let key = &table.get().api_keys[index];
                let plan = &table.get().plans[key.plan.as_ref().map_or(0, |p| p.to_native() as usize)];
                let tracked = self.tracked.entry(Arc::as_ptr(cell) as usize).or_insert_with(|| Tracked {
                    cell: cell.clone(),
                    key: key.name.to_string(),
                    plan: plan.name.to_string(),
                    rule,
                    collected: [(0, 0); 2],
                    missing: 0,
                });
                tracked.missing = 0;
                // A changed limit keeps the cell; the periods stay the same.
                tracked.rule = rule;
            }
        }
        for t in self.tracked.values_mut() {
            let current = t.rule.index(now_s);
            // The two slots hold the current and the previous period.
            for period in [current.saturating_sub(1), current] {
                let slot = (period & 1) as usize;
                let count = t.cell.local(period);
                let (seen_period, seen) = t.collected[slot];
                let before = if seen_period == period { seen } else { 0 };
                if count > before {
                    let k = (t.key.clone(), t.plan.clone(), t.rule.start(period));
                    *self.unsent.entry(k).or_default() += (count - before) as i64;
                }
                t.collected[slot] = (period, count);
            }
        }
        self.tracked.retain(|_, t| t.missing < 2);
    }

    /// The report to send now: the oldest unanswered one, or a new one from `unsent`, or an
    /// empty one that only asks for the totals.
    pub fn next_report(&mut self) -> grpc::UsageReport {
        self.queue_unsent();
        match self.outbox.front_mut() {
            Some(out) => {
                out.maybe_sent = true;
                out.report.clone()
            }
            None => grpc::UsageReport { instance: self.instance.clone(), sequence: 0, entries: vec![] },
        }
    }

    /// Moves `unsent` into the outbox: into the last report if it was never sent, else a new one.
    fn queue_unsent(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        let unsent = std::mem::take(&mut self.unsent);
        match self.outbox.back_mut() {
            Some(last) if !last.maybe_sent && !last.carried => {
                let mut merged: BTreeMap<PeriodKey, i64> = BTreeMap::new();
                for e in last.report.entries.drain(..) {
                    *merged.entry((e.key, e.plan, e.period_start)).or_default() += e.requests;
                }
                for (k, n) in unsent {
                    *merged.entry(k).or_default() += n;
                }
                last.report.entries = to_entries(merged);
            }
            _ => {
                let report = self.new_report(unsent);
                self.outbox.push_back(Outgoing { report, carried: false, maybe_sent: false });
            }
        }
    }

    /// The control plane answered `sent` with `totals`.
    pub fn answered(&mut self, sent: &grpc::UsageReport, totals: grpc::UsageTotals, now_s: i64) {
        let front_matches = self
            .outbox
            .front()
            .is_some_and(|o| o.report.sequence == sent.sequence && o.report.instance == sent.instance);
        if sent.sequence != 0 && front_matches {
            if let Some(done) = self.outbox.pop_front() {
                if done.carried {
                    add(&mut self.carried, &done.report.entries, -1);
                } else {
                    add(&mut self.acked, &done.report.entries, 1);
                }
            }
        }
        self.totals =
            totals.entries.into_iter().map(|e| ((e.key, e.plan, e.period_start), e.requests)).collect();
        self.apply_remote(now_s);
    }

    /// Sets each cell's remote usage: the control plane's total minus what of it this process
    /// counted, plus earlier runs' counts it does not have yet.
    pub fn apply_remote(&self, now_s: i64) {
        for t in self.tracked.values() {
            let period = t.rule.index(now_s);
            let k = (t.key.clone(), t.plan.clone(), t.rule.start(period));
            let acked = self.acked.get(&k).copied().unwrap_or(0);
            // No total (the control plane has never been reached, or holds nothing): only
            // what this ledger knows itself.
            let total = self.totals.get(&k).copied().unwrap_or(acked);
            let carried = self.carried.get(&k).copied().unwrap_or(0);
            t.cell.set_remote(period, total - acked + carried);
        }
    }

    /// Every report not yet answered, `unsent` included, to keep across a restart.
    pub fn pending(&mut self) -> grpc::PendingUsage {
        self.queue_unsent();
        let reports = self
            .outbox
            .iter()
            .map(|o| grpc::PendingReport { report: Some(o.report.clone()), maybe_sent: o.maybe_sent })
            .collect();
        grpc::PendingUsage { reports }
    }
}

pub struct ReporterConfig {
    pub control_plane: Option<super::client::Target>,
    /// Where unanswered reports are kept; `None`: in memory only.
    pub state_dir: Option<PathBuf>,
    pub instance: String,
    /// How often usage is collected and reported (the most a crash can lose).
    pub interval: Duration,
}

/// Stops the reporter after a final collection, report and save.
pub struct ReporterHandle {
    stop: mpsc::Sender<mpsc::Sender<()>>,
}

impl ReporterHandle {
    /// Call after the shards have stopped, so the last collection sees every request.
    pub fn flush_and_stop(&self, timeout: Duration) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.stop.send(done_tx).is_ok() && done_rx.recv_timeout(timeout).is_err() {
            log::warn!("quota usage flush did not finish in {timeout:?}");
        }
    }
}

pub fn start(config: ReporterConfig, table: CurrentTable) -> Result<ReporterHandle, String> {
    let pending_path = config.state_dir.as_ref().map(|d| d.join(PENDING_FILE));
    let pending = match &pending_path {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => grpc::PendingUsage::decode(bytes.as_slice()).unwrap_or_else(|e| {
                log::warn!("ignoring unreadable {}: {e}", path.display());
                grpc::PendingUsage::default()
            }),
            Err(_) => grpc::PendingUsage::default(),
        },
        None => grpc::PendingUsage::default(),
    };
    let ledger = Ledger::new(config.instance.clone(), pending);
    ledger.apply_remote(quota::unix_now_s());
    let (stop_tx, stop_rx) = mpsc::channel::<mpsc::Sender<()>>();
    let interval = config.interval;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("usage-report".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut reporter = Reporter {
                    config,
                    ledger,
                    table,
                    pending_path,
                    client: None,
                    saved: None,
                    table_seen: 0,
                };
                loop {
                    let stop = stop_rx.try_recv().ok();
                    reporter.round().await;
                    if let Some(done) = stop {
                        let _ = done.send(());
                        return;
                    }
                    // Sleep in small steps so a stop is served promptly and a new table's
                    // cells get the known totals at once.
                    for _ in 0..10 {
                        if let Ok(done) = stop_rx.try_recv() {
                            reporter.round().await;
                            let _ = done.send(());
                            return;
                        }
                        tokio::time::sleep(interval / 10).await;
                        reporter.follow_table();
                    }
                }
            })
        })
        .map_err(|e| e.to_string())?;
    Ok(ReporterHandle { stop: stop_tx })
}

struct Reporter {
    config: ReporterConfig,
    ledger: Ledger,
    table: CurrentTable,
    pending_path: Option<PathBuf>,
    client: Option<proto::client::Client>,
    /// The pending usage last written, to skip identical rewrites.
    saved: Option<grpc::PendingUsage>,
    /// The table whose cells are tracked (its address).
    table_seen: usize,
}

impl Reporter {
    async fn round(&mut self) {
        let table = self.table.lock().ok().and_then(|t| t.clone());
        let now = quota::unix_now_s();
        self.ledger.collect(table.as_deref(), now);
        self.table_seen = table.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize);
        drop(table);
        if self.config.control_plane.is_some() {
            if let Err(e) = self.exchange(now).await {
                // Reported once per outage, not once a second.
                if self.client.is_some() {
                    log::warn!("quota usage not reported ({e}); keeping it until it is");
                }
                self.client = None;
            }
        } else {
            self.ledger.apply_remote(now);
        }
        self.save();
    }

    /// Starts tracking a newly published table's cells, with the totals last received.
    fn follow_table(&mut self) {
        let table = self.table.lock().ok().and_then(|t| t.clone());
        let pointer = table.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize);
        if pointer != self.table_seen {
            let now = quota::unix_now_s();
            self.ledger.collect(table.as_deref(), now);
            self.ledger.apply_remote(now);
            self.table_seen = pointer;
        }
    }

    async fn exchange(&mut self, now: i64) -> Result<(), String> {
        if self.client.is_none() {
            let Some(target) = &self.config.control_plane else { return Err("no control plane".into()) };
            self.client = Some(super::client::connect(target, super::client::Use::Report).await?);
        }
        let client = self.client.as_mut().ok_or("no client")?;
        // Drain the outbox: a backlog (after an outage) goes out report by report.
        loop {
            let report = self.ledger.next_report();
            let totals =
                client.report_usage(report.clone()).await.map_err(|s| proto::client::status_text(&s))?;
            self.ledger.answered(&report, totals.into_inner(), now);
            if report.sequence == 0 || self.ledger.outbox.is_empty() {
                return Ok(());
            }
        }
    }

    /// Keeps unanswered reports on disk, or removes the file once there are none.
    fn save(&mut self) {
        let Some(path) = &self.pending_path else { return };
        let pending = self.ledger.pending();
        if self.saved.as_ref() == Some(&pending) {
            return;
        }
        let result = if pending.reports.is_empty() {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            proto::durable_file::write(path, &pending.encode_to_vec())
        };
        match result {
            Ok(()) => self.saved = Some(pending),
            Err(e) => log::warn!("cannot keep pending quota usage in {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::table::{self, Table};

    /// A table with one key, `k`, in plan `p` with a daily quota of 100.
    fn table() -> LoadedTable {
        let t = Table {
            plans: vec![table::UsagePlan {
                id: 1,
                name: "p".into(),
                stages: vec![],
                quota: Some(table::Quota {
                    limit: 100,
                    period: table::QuotaPeriod::Day,
                    offset: 0,
                    anchor_s: 0,
                }),
            }],
            api_keys: vec![table::ApiKey {
                id: 2,
                name: "k".into(),
                hash: [7; 32],
                enabled: true,
                plan: Some(0),
                limit: None,
                method_limits: vec![],
                invalidate_cache: false,
            }],
            ..Table::default()
        };
        LoadedTable::load(&table::encode(&t), None, 1).unwrap()
    }

    const NOW: i64 = 1_796_083_200 + 3_600;
    const PERIOD: u64 = (NOW / 86_400) as u64;

    fn totals(n: i64) -> grpc::UsageTotals {
        let e = grpc::UsageEntry {
            key: "k".into(),
            plan: "p".into(),
            period_start: PERIOD as i64 * 86_400,
            requests: n,
        };
        grpc::UsageTotals { entries: vec![e] }
    }

    fn admit(t: &LoadedTable, n: usize) -> usize {
        (0..n).filter(|_| t.take_quota(0, NOW)).count()
    }

    #[test]
    fn counts_are_reported_once_and_other_planes_usage_counts_here() {
        let t = table();
        let mut ledger = Ledger::new("dp/1".into(), grpc::PendingUsage::default());
        assert_eq!(admit(&t, 5), 5);
        ledger.collect(Some(&t), NOW);
        let report = ledger.next_report();
        assert_eq!((report.sequence, report.entries[0].requests), (1, 5));
        // Unanswered: the same report again, even with more counted meanwhile.
        admit(&t, 2);
        ledger.collect(Some(&t), NOW);
        assert_eq!(ledger.next_report(), report);
        // Answered: another data plane had admitted 90, so 5 are left here.
        ledger.answered(&report, totals(95), NOW);
        let next = ledger.next_report();
        assert_eq!((next.sequence, next.entries[0].requests), (2, 2));
        ledger.answered(&next, totals(97), NOW);
        assert_eq!(admit(&t, 10), 3, "100 - 90 elsewhere - 7 here");
        assert_eq!(ledger.next_report().sequence, 0, "nothing new: only asks for the totals");
    }

    #[test]
    fn unanswered_reports_survive_a_restart_and_count_meanwhile() {
        let t = table();
        let mut ledger = Ledger::new("dp/1".into(), grpc::PendingUsage::default());
        admit(&t, 30);
        ledger.collect(Some(&t), NOW);
        let sent = ledger.next_report();
        admit(&t, 10);
        ledger.collect(Some(&t), NOW);
        let pending = ledger.pending();
        assert_eq!(pending.reports.len(), 2);
        assert!(pending.reports[0].maybe_sent && !pending.reports[1].maybe_sent);
        // The next run: a fresh table, no control plane yet; the 40 still count.
        let t = table();
        let mut ledger = Ledger::new("dp/2".into(), pending);
        ledger.collect(Some(&t), NOW);
        ledger.apply_remote(NOW);
        assert_eq!(admit(&t, 100), 60);
        // The first report is resent as it was, so the control plane can drop a duplicate.
        assert_eq!(ledger.next_report(), sent);
        ledger.answered(&sent, totals(30), NOW);
        // 30 acknowledged, 10 still carried, 60 counted here.
        assert_eq!(admit(&t, 1), 0);
        assert_eq!(t.quotas[0].as_ref().unwrap().remote(PERIOD), 40);
    }
}
