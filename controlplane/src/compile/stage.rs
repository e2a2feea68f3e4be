//! A Stage: its variables (AWS's rules, substituted into URIs), throttle, cache, access log
//! and canary, compiled with its API's routes.

use super::common::{add_limit, stable_id, Errors};
use super::route::compile_routes;
use super::variables::{check_variables, to_variables};
use super::Targets;
use crate::manifest::{self, Located};
use proto::table::{self, Stage};

pub(super) fn compile_stage(
    api: &Located<manifest::Api>,
    doc: &Located<manifest::Stage>,
    canary_api: Option<&Located<manifest::Api>>,
    cache_flushes: u64,
    targets: Targets<'_>,
    errors: &mut Errors,
) -> Option<Stage> {
    let Targets { upstreams, limits } = targets;
    let s = &doc.value;
    let before = errors.list.len();
    check_variables(doc, "variables", &s.variables, errors);
    let protocol = match api.value.protocol {
        manifest::Protocol::Rest => table::Protocol::Rest,
        manifest::Protocol::Http => table::Protocol::Http,
        manifest::Protocol::Websocket => table::Protocol::WebSocket,
    };
    let limit = match &s.throttle {
        None => None,
        Some(t) => match add_limit(limits, stable_id(&[&api.value.name, &s.name, "stage throttle"]), t) {
            Ok(i) => Some(i),
            Err(e) => {
                errors.at(doc, "throttle", e);
                None
            }
        },
    };
    let id = stable_id(&[&api.value.name, &s.name]);
    let cache = super::cache_settings::stage(doc, id, cache_flushes, errors);
    let routes = compile_routes(api, &s.name, Some(&s.variables), cache.as_ref(), upstreams, limits, errors);
    let canary = match (&s.canary, canary_api) {
        (None, _) => None,
        (Some(c), None) => {
            errors.at(
                doc,
                "canary.deployment",
                format!(
                    "'{}' is not a deployment of Api '{}' (see controlctl deployments; offline compile has none)",
                    c.deployment, s.api
                ),
            );
            None
        }
        (Some(c), Some(canary_api)) => {
            check_variables(doc, "canary.variables", &c.variables, errors);
            if !(0.0..=100.0).contains(&c.percent) {
                errors.at(doc, "canary.percent", "a share of traffic between 0 and 100");
            }
            // The canary sees the stage's variables with its own overrides on top.
            let mut variables = s.variables.clone();
            variables.extend(c.variables.iter().map(|(k, v)| (k.clone(), v.clone())));
            // AWS's canary default (useStageCache false): canary requests bypass the cache.
            compile_routes(canary_api, &s.name, Some(&variables), None, upstreams, limits, errors).map(
                |routes| table::Canary {
                    percent_per_million: (c.percent * 10_000.0).round() as u32,
                    deployment: c.deployment.clone(),
                    variables: to_variables(&variables),
                    routes,
                },
            )
        }
    };
    let access_log = match &s.access_log {
        None => None,
        Some(settings) => match super::access_log::compile(settings) {
            Ok(log) => Some(log),
            Err((field, message)) => {
                errors.at(doc, format!("accessLog.{field}"), message);
                None
            }
        },
    };
    if errors.list.len() != before {
        return None;
    }
    Some(Stage {
        id,
        api: api.value.name.clone(),
        name: s.name.clone(),
        protocol,
        variables: to_variables(&s.variables),
        routes: routes?,
        canary,
        limit,
        cache: cache.map(|c| c.cache),
        access_log,
    })
}
