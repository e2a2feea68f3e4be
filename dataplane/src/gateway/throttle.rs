//! The throttle phase, in AWS order: the client's buckets (per method, then per plan), then
//! the method's, the stage's and the account's, all shared by every shard. The first empty
//! bucket answers 429.

use super::Flow;
use crate::exchange::Exchange;
use crate::gateway_error::Kind;
use crate::respond;
use crate::runtime::stats::ShardStats;
use proto::lookup;

pub fn run(x: &mut Exchange<'_>, out: &mut Vec<u8>) -> Flow {
    let Some(routed) = x.routed.as_ref() else { return Flow::Continue };
    let (table, route) = (x.table.get(), routed.route);
    let key_entry = x.identity.api_key.map(|index| &table.api_keys[index as usize]);
    let limits = [
        key_entry.and_then(|k| lookup::key_method_limit(k, route.id.to_native())),
        key_entry.and_then(|k| k.limit.as_ref().map(|l| l.to_native())),
        route.limit.as_ref().map(|l| l.to_native()),
        routed.stage.limit.as_ref().map(|l| l.to_native()),
        table.account_limit.as_ref().map(|l| l.to_native()),
    ];
    if x.table.admit(&limits) {
        return Flow::Continue;
    }
    ShardStats::add(&x.shard.stats.throttled, 1);
    x.common.trail.throttled.set(true);
    respond::error(out, Kind::Throttled, x.common);
    Flow::Answered
}
