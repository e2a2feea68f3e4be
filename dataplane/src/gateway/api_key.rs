//! The API-key phase: a route with `apiKeyRequired` needs an `x-api-key` whose usage plan
//! covers the stage, else 403 Forbidden. AWS applies usage plans to API-key methods only, so
//! other routes leave the identity without a key.

use super::Flow;
use crate::exchange::Exchange;
use crate::gateway_error::Kind;
use crate::respond;
use crate::runtime::stats::ShardStats;

pub fn run(x: &mut Exchange<'_>, out: &mut Vec<u8>) -> Flow {
    let Some(routed) = x.routed.as_ref() else { return Flow::Continue };
    if !routed.route.api_key_required {
        return Flow::Continue;
    }
    match x.table.authorized_key(x.head().headers.get("x-api-key"), routed.stage_index) {
        Some(index) => {
            x.identity.api_key = Some(index);
            Flow::Continue
        }
        None => {
            ShardStats::add(&x.shard.stats.forbidden, 1);
            respond::error(out, Kind::InvalidApiKey, x.common);
            Flow::Answered
        }
    }
}
