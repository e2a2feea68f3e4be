//! API keys and their quota usage: `keys ...` and `usage`.

use super::output::{format_errors, print_changes, print_structured, print_table};
use super::{connect, Failure, KeysAction, Output, Target};
use proto::grpc;

pub(crate) async fn keys(server: &Target, action: KeysAction) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    match action {
        KeysAction::Create { name, plan, value } => {
            // Through apply, so a key goes through the same validation and store as manifests.
            let mut doc = serde_json::json!({ "kind": "ApiKey", "name": name });
            if let Some(plan) = plan {
                doc["plan"] = plan.into();
            }
            if let Some(value) = value {
                doc["value"] = value.into();
            }
            let content = yaml_serde::to_string(&doc).map_err(|e| Failure::Refused(e.to_string()))?;
            let files = vec![grpc::ManifestFile { name: "controlctl keys create".into(), content }];
            let resp = client
                .apply(grpc::ApplyRequest { files, dry_run: false, attachments: vec![] })
                .await?
                .into_inner();
            if !resp.errors.is_empty() {
                return Err(Failure::Refused(format_errors(&resp.errors)));
            }
            print_changes(&resp.changes, "");
        }
        KeysAction::List => {
            let objects = client
                .get(grpc::GetRequest { kind: "ApiKey".into(), name: String::new() })
                .await?
                .into_inner()
                .objects;
            let rows: Vec<Vec<String>> =
                objects.iter().map(|o| vec![o.name.clone(), o.summary.clone()]).collect();
            print_table(&["KEY", "DETAILS"], &rows);
        }
        KeysAction::Revoke { name } => {
            let resp = client.delete(grpc::DeleteRequest { kind: "ApiKey".into(), name }).await?.into_inner();
            print_changes(&resp.changes, "");
        }
        KeysAction::Enable { name } => set_enabled(&mut client, name, true).await?,
        KeysAction::Disable { name } => set_enabled(&mut client, name, false).await?,
        KeysAction::Reset { name } => {
            let request = grpc::AdjustUsageRequest { key: name, reset: true, grant: 0 };
            print_usage(&client.adjust_usage(request).await?.into_inner().rows, Output::Table);
        }
        KeysAction::Grant { name, requests } => {
            let request = grpc::AdjustUsageRequest { key: name, reset: false, grant: requests };
            print_usage(&client.adjust_usage(request).await?.into_inner().rows, Output::Table);
        }
    }
    Ok(())
}

/// Re-applies a stored key with `enabled` changed. The stored value is its hash, which apply
/// takes as it is.
async fn set_enabled(client: &mut proto::client::Client, name: String, enabled: bool) -> Result<(), Failure> {
    let request = grpc::GetRequest { kind: "ApiKey".into(), name };
    let objects = client.get(request).await?.into_inner().objects;
    let object = objects.first().ok_or_else(|| Failure::Refused("error: no such ApiKey".into()))?;
    let mut doc: serde_json::Value =
        serde_json::from_str(&object.json).map_err(|e| Failure::Refused(format!("error: {e}")))?;
    doc["enabled"] = enabled.into();
    let content = yaml_serde::to_string(&doc).map_err(|e| Failure::Refused(e.to_string()))?;
    let files = vec![grpc::ManifestFile { name: "controlctl keys".into(), content }];
    let resp =
        client.apply(grpc::ApplyRequest { files, dry_run: false, attachments: vec![] }).await?.into_inner();
    if !resp.errors.is_empty() {
        return Err(Failure::Refused(format_errors(&resp.errors)));
    }
    print_changes(&resp.changes, "");
    Ok(())
}

pub(crate) async fn usage(
    server: &Target,
    name: String,
    from: Option<String>,
    to: Option<String>,
    output: Output,
) -> Result<(), Failure> {
    let bound = |text: Option<String>| -> Result<i64, Failure> {
        text.map_or(Ok(0), |t| {
            proto::quota::parse_utc(&t).map_err(|e| Failure::Refused(format!("error: {e}")))
        })
    };
    let request = grpc::GetUsageRequest { name, from: bound(from)?, to: bound(to)? };
    let rows = connect(server).await?.get_usage(request).await?.into_inner().rows;
    print_usage(&rows, output);
    Ok(())
}

fn print_usage(rows: &[grpc::UsageRow], output: Output) {
    let format = |s: i64| proto::quota::format_utc(s);
    match output {
        Output::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.key.clone(),
                        r.plan.clone(),
                        format(r.period_start),
                        format(r.period_end),
                        r.used.to_string(),
                        r.adjustment.to_string(),
                        r.limit.to_string(),
                        r.remaining.to_string(),
                    ]
                })
                .collect();
            print_table(&["KEY", "PLAN", "FROM", "TO", "USED", "ADJUSTED", "LIMIT", "REMAINING"], &table);
        }
        _ => {
            let values: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({"key": r.key, "plan": r.plan, "from": format(r.period_start),
                        "to": format(r.period_end), "used": r.used, "adjustment": r.adjustment,
                        "limit": r.limit, "remaining": r.remaining})
                })
                .collect();
            print_structured(&serde_json::Value::Array(values), output);
        }
    }
}
