//! `origin`: a fast HTTP/1.1 origin for proxy tests and benchmarks. One monoio thread per
//! `--threads`, keep-alive and pipelining, a fixed response body or a small JSON echo of the
//! path, and an optional delay. `GET /origin-requests` answers how many other requests it
//! has served (so a benchmark can tell how many a cache in front let through).

use clap::Parser;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Requests served, `/origin-requests` itself excluded.
static SERVED: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, Clone)]
#[command(name = "origin", about = "A fast HTTP/1.1 origin for tests and benchmarks")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Answer every request with this many bytes of body; by default a JSON echo of the path.
    #[arg(long)]
    body_bytes: Option<usize>,
    /// Wait this long before each response.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Pin thread i to cpu (first + i).
    #[arg(long)]
    cpu: Option<usize>,
    /// Stall the whole server for --stall-ms at the start of every period of this many ms
    /// (to check that a load generator's percentiles see a stall).
    #[arg(long)]
    stall_every_ms: Option<u64>,
    #[arg(long, default_value_t = 100)]
    stall_ms: u64,
}

/// When the process started: stalls are phases of this clock, the same on every thread.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// How long until the current stall (if any) ends.
fn stall_left(every: Option<u64>, stall_ms: u64) -> Duration {
    let Some(every) = every.filter(|e| *e > 0) else { return Duration::ZERO };
    let elapsed = STARTED.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64;
    let phase = elapsed % every;
    if phase < stall_ms {
        Duration::from_millis(stall_ms - phase)
    } else {
        Duration::ZERO
    }
}

fn main() {
    let cli = Cli::parse();
    STARTED.get_or_init(std::time::Instant::now);
    let listeners: Vec<std::net::TcpListener> = (0..cli.threads.max(1))
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::for_address(cli.listen), socket2::Type::STREAM, None)
                    .expect("socket");
            socket.set_reuse_port(true).expect("reuse_port");
            socket.set_reuse_address(true).expect("reuse_addr");
            socket.set_nonblocking(true).expect("nonblocking");
            socket.bind(&cli.listen.into()).unwrap_or_else(|e| panic!("bind {}: {e}", cli.listen));
            socket.listen(4096).expect("listen");
            socket.into()
        })
        .collect();
    println!("origin listening on {}", listeners[0].local_addr().expect("addr"));
    let fixed: Option<Vec<u8>> = cli.body_bytes.map(|n| {
        let mut head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ".to_vec();
        head.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        head.extend_from_slice(b"\r\n\r\n");
        head.extend(std::iter::repeat_n(b'x', n));
        head
    });
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let fixed = fixed.clone();
            let cli = cli.clone();
            std::thread::spawn(move || {
                if let Some(cpu) = cli.cpu {
                    let _ = monoio::utils::bind_to_cpu_set([cpu + i]);
                }
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("listener");
                    let timing = Timing {
                        delay: Duration::from_millis(cli.delay_ms),
                        stall_every_ms: cli.stall_every_ms,
                        stall_ms: cli.stall_ms,
                    };
                    while let Ok((stream, _)) = listener.accept().await {
                        monoio::spawn(serve(stream, fixed.clone(), timing));
                    }
                });
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

#[derive(Clone, Copy)]
struct Timing {
    delay: Duration,
    stall_every_ms: Option<u64>,
    stall_ms: u64,
}

async fn serve(mut stream: TcpStream, fixed: Option<Vec<u8>>, timing: Timing) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let mut consumed = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[consumed..]) {
                Ok(httparse::Status::Complete(n)) => {
                    let length: usize = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() - consumed < n + length {
                        break;
                    }
                    let path = req.path.unwrap_or("/");
                    if path == "/origin-requests" {
                        let count = SERVED.load(Relaxed).to_string();
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", count.len());
                        out.extend_from_slice(head.as_bytes());
                        out.extend_from_slice(count.as_bytes());
                        consumed += n + length;
                        continue;
                    }
                    SERVED.fetch_add(1, Relaxed);
                    match &fixed {
                        Some(response) => out.extend_from_slice(response),
                        None => {
                            let body_len = r#"{"origin":"bench","path":""}"#.len() + path.len();
                            out.extend_from_slice(
                                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ",
                            );
                            out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
                            out.extend_from_slice(b"\r\n\r\n{\"origin\":\"bench\",\"path\":\"");
                            out.extend_from_slice(path.as_bytes());
                            out.extend_from_slice(b"\"}");
                        }
                    }
                    consumed += n + length;
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            }
        }
        buf.drain(..consumed);
        if !out.is_empty() {
            if !timing.delay.is_zero() {
                monoio::time::sleep(timing.delay).await;
            }
            let stall = stall_left(timing.stall_every_ms, timing.stall_ms);
            if !stall.is_zero() {
                monoio::time::sleep(stall).await;
            }
            let (result, o) = stream.write_all(out).await;
            out = o;
            out.clear();
            if result.is_err() {
                return;
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (result, slice) = stream.read(buf.slice_mut(len..cap)).await;
        buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
