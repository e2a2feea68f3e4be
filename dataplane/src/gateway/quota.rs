//! The quota phase: the API key's plan quota for this period, 429 Limit Exceeded when used up.
//! After the throttles, so a throttled request uses none of it.

use super::Flow;
use crate::exchange::Exchange;
use crate::gateway_error::Kind;
use crate::respond;
use crate::runtime::stats::ShardStats;

pub fn run(x: &mut Exchange<'_>, out: &mut Vec<u8>) -> Flow {
    let Some(index) = x.identity.api_key else { return Flow::Continue };
    if x.table.take_quota(index, crate::limits::quota::unix_now_s()) {
        return Flow::Continue;
    }
    ShardStats::add(&x.shard.stats.quota_exceeded, 1);
    x.common.trail.throttled.set(true);
    respond::error(out, Kind::QuotaExceeded, x.common);
    Flow::Answered
}
