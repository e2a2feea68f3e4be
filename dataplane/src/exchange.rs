//! One request's context as the phases see it: the parsed request, what routing found (stage,
//! route, path parameters), the caller's identity, and the response's common headers and trail.
//! Built by [`crate::gateway`] for each request; read by the phases and the integrations.

use crate::http1::head::Head;
use crate::observe::trace_context::TraceContext;
use crate::respond::Common;
use crate::shard::Shard;
use crate::table::LoadedTable;
use proto::lookup::Captures;
use proto::table::{ArchivedRoute, ArchivedStage};
use std::cell::OnceCell;
use std::net::SocketAddr;

/// Who is at the other end of the connection.
pub struct Client {
    pub peer: SocketAddr,
    /// What the TLS handshake settled, on an HTTPS connection.
    pub tls: Option<crate::tls::Session>,
}

/// The request as received, borrowed from the connection.
pub struct Request<'r, 'b, 'h> {
    pub head: &'r Head<'b, 'h>,
    pub body: &'r [u8],
    pub peer: SocketAddr,
    pub tls: Option<&'r crate::tls::Session>,
    pub request_id: &'r [u8; 36],
    /// The tracing headers, made when first needed (forwarding, logging).
    trace: OnceCell<TraceContext>,
}

impl<'r, 'b, 'h> Request<'r, 'b, 'h> {
    pub fn new(head: &'r Head<'b, 'h>, body: &'r [u8], client: &'r Client, request_id: &'r [u8; 36]) -> Self {
        Request {
            head,
            body,
            peer: client.peer,
            tls: client.tls.as_ref(),
            request_id,
            trace: OnceCell::new(),
        }
    }

    pub fn trace(&self, shard: &Shard) -> &TraceContext {
        self.trace.get_or_init(|| {
            TraceContext::of(self.head, || shard.random.next_u64(), crate::limits::quota::unix_now_s() as u64)
        })
    }
}

/// Who the caller is, as far as the phases so far established it. The API-key phase fills
/// `api_key`; authorizers will add the principal and its claims here.
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity {
    /// The index of the request's API key in the table, once the key was checked.
    pub api_key: Option<u32>,
}

/// What routing found.
pub struct Routed<'x> {
    /// The stage's index in the table (and in the table's per-stage lists).
    pub stage_index: u32,
    pub stage: &'x ArchivedStage,
    pub route: &'x ArchivedRoute,
    /// The path the route matched (after the base path or stage name); `captures` index it.
    pub route_path: &'x str,
    pub captures: Captures,
}

pub struct Exchange<'x> {
    pub shard: &'x Shard,
    /// The table the request runs on from start to finish.
    pub table: &'x LoadedTable,
    pub request: &'x Request<'x, 'x, 'x>,
    pub common: &'x Common<'x>,
    /// The stage the host and path picked, once the route phase found one.
    pub stage: Option<&'x ArchivedStage>,
    /// The route, once the route phase found one.
    pub routed: Option<Routed<'x>>,
    pub identity: Identity,
}

impl Exchange<'_> {
    pub fn head(&self) -> &Head<'_, '_> {
        self.request.head
    }
}
