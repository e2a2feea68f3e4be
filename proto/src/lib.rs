//! The contracts between the control plane and the data plane.
//!
//! - [`grpc`]: the `Control` service (generated from `gateway.proto`).
//! - [`table`]: the compiled routing table (rkyv), its encoding and its one-time validation.
//! - [`tree`]: builds a stage's route tree from route paths (used by the compiler).
//! - [`lookup`]: the pure, allocation-free lookup the data plane runs per request.
//! - [`client`]: how the data plane and controlctl reach the control plane (TLS, token).
//! - [`certificate`]: the fields of X.509 certificates as AWS shows them, for both planes.
//! - [`quota`]: quota periods on the UTC calendar, shared by both planes.
//! - [`durable_file`]: crash-safe file replacement, used by both planes.
//! - [`logging`]: how both planes write log lines (levels, text or JSON).

pub mod certificate;
pub mod client;
pub mod durable_file;
pub mod logging;
pub mod lookup;
pub mod quota;
pub mod table;
pub mod tree;

/// The generated gRPC types and the `Control` client and server. They stay at the edges: the
/// control plane's service and the data plane's control-plane client convert them.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod grpc {
    tonic::include_proto!("gateway.v1");
}
