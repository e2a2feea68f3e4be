//! Commands on stored objects and deployments: `get`, `delete`, `deploy`, `rollback`,
//! `deployments` and `cache flush`.

use super::output::{format_ms, print_changes, print_structured, print_table};
use super::status::wait_for;
use super::{connect, Failure, Output, Target};
use proto::grpc;
use std::time::Duration;

pub(crate) async fn get(
    server: &Target,
    kind: String,
    name: Option<String>,
    output: Output,
) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let req = grpc::GetRequest { kind, name: name.unwrap_or_default() };
    let objects = client.get(req).await?.into_inner().objects;
    match output {
        Output::Table => {
            let rows: Vec<Vec<String>> =
                objects.iter().map(|o| vec![o.kind.clone(), o.name.clone(), o.summary.clone()]).collect();
            print_table(&["KIND", "NAME", "DETAILS"], &rows);
        }
        Output::Json | Output::Yaml => {
            let values: Vec<serde_json::Value> =
                objects.iter().filter_map(|o| serde_json::from_str(&o.json).ok()).collect();
            print_structured(&serde_json::Value::Array(values), output);
        }
    }
    Ok(())
}

pub(crate) async fn delete(server: &Target, kind: String, name: String) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let resp = client.delete(grpc::DeleteRequest { kind, name }).await?.into_inner();
    print_changes(&resp.changes, "");
    Ok(())
}

pub(crate) async fn deploy(
    server: &Target,
    api: String,
    stage: String,
    description: String,
) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let resp = client.deploy(grpc::DeployRequest { api, stage, description }).await?.into_inner();
    print_changes(&resp.changes, "");
    Ok(())
}

pub(crate) async fn rollback(
    server: &Target,
    api: String,
    stage: String,
    to: Option<String>,
) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let req = grpc::RollbackRequest { api, stage, to: to.unwrap_or_default() };
    let resp = client.rollback(req).await?.into_inner();
    print_changes(&resp.changes, "");
    Ok(())
}

pub(crate) async fn deployments(
    server: &Target,
    api: String,
    stage: String,
    output: Output,
) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let list =
        client.list_deployments(grpc::ListDeploymentsRequest { api, stage }).await?.into_inner().deployments;
    match output {
        Output::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        format!("{}{}", d.id, if d.current { " *" } else { "" }),
                        d.routes.to_string(),
                        format_ms(d.created_at_ms),
                        d.description.clone(),
                    ]
                })
                .collect();
            print_table(&["DEPLOYMENT", "ROUTES", "CREATED", "DESCRIPTION"], &rows);
        }
        _ => {
            let values: Vec<serde_json::Value> = list
                .iter()
                .map(|d| {
                    serde_json::json!({"id": d.id, "api": d.api, "createdAtMs": d.created_at_ms,
                        "description": d.description, "current": d.current, "routes": d.routes})
                })
                .collect();
            print_structured(&serde_json::Value::Array(values), output);
        }
    }
    Ok(())
}

pub(crate) async fn flush_cache(
    server: &Target,
    api: String,
    stage: String,
    timeout_secs: u64,
) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let resp = client.flush_cache(grpc::FlushCacheRequest { api, stage }).await?.into_inner();
    print_changes(&resp.changes, "");
    wait_for(&mut client, resp.version, Duration::from_secs(timeout_secs)).await
}
