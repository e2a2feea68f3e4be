//! The upgrade hand-off: once a response switched protocols (a WebSocket `101` from an
//! HTTP_PROXY upstream, with `--proxy-websocket`), the client connection is no longer HTTP.
//! The connection loop hands it here with the bytes the client already sent past its request,
//! and the two sockets are relayed byte for byte, both ways at once, until both sides have
//! closed. An end of stream on one side is passed on as a half-close; a tunnel without
//! traffic for the idle timeout is shut down by the shard's sweeper, both sockets together.

use super::stream::Stream;
use crate::runtime::memory::Charge;
use crate::shard::Shard;
use crate::upstream::client::Tunnel;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;

/// Bytes read at once in each direction.
const BUFFER: usize = 16 * 1024;

/// Relays `client` and the tunnel's upstream until both directions are done. `deadline` is
/// the connection's idle deadline on the coarse clock, which the sweeper enforces (on both
/// sockets).
pub async fn relay<S: Stream>(
    client: S,
    early: Vec<u8>,
    tunnel: Tunnel,
    shard: &Shard,
    deadline: &Cell<u64>,
) {
    let Tunnel { stream: upstream, pending } = tunnel;
    let stats = &shard.stats;
    stats.tunnels_open.fetch_add(1, Relaxed);
    let mut charge = Charge::default();
    stats.memory.set(&mut charge, (2 * BUFFER + early.capacity() + pending.capacity()) as u64);
    deadline.set(shard.clock.deadline(shard.settings.idle_timeout));
    let (client_read, client_write) = client.into_halves();
    let (upstream_read, upstream_write) = upstream.into_split();
    monoio::join!(
        pump(client_read, upstream_write, early, shard, deadline),
        pump(upstream_read, client_write, pending, shard, deadline),
    );
    deadline.set(0);
    stats.memory.release(&mut charge);
    stats.tunnels_open.fetch_sub(1, Relaxed);
}

/// Copies `from` to `to`, starting with `first`, then half-closes `to`. Every chunk moves the
/// connection's idle deadline on.
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    mut from: R,
    mut to: W,
    first: Vec<u8>,
    shard: &Shard,
    deadline: &Cell<u64>,
) {
    let mut buf = first;
    loop {
        if !buf.is_empty() {
            let (written, back) = to.write_all(buf).await;
            if written.is_err() {
                break;
            }
            buf = back;
            buf.clear();
        }
        if buf.capacity() != BUFFER {
            buf = Vec::with_capacity(BUFFER);
        }
        let (read, back) = from.read(buf).await;
        buf = back;
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => deadline.set(shard.clock.deadline(shard.settings.idle_timeout)),
        }
    }
    let _ = to.shutdown().await;
}
