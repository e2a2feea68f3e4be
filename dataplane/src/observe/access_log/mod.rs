//! Access logs: shards format lines into their own buffers ([`ShardLog`]) and hand them, once
//! per tick, to one writer thread ([`start_writer`]) that appends them to the stages' files.
//! A shard never waits for the disk: when the writer's queue is full or a shard's buffer is at
//! its limit, lines are counted as dropped instead. SIGHUP makes the writer reopen every file
//! (after logrotate moved them).
//!
//! Files live in one directory (`--access-log-dir`): a destination is a file name in it, checked
//! by the control plane and again by the table decoder, and opened without following a
//! symbolic link, so whoever applies manifests cannot make a data plane write elsewhere.
//!
//! - [`format`]: one line from a stage's compiled format.

pub mod format;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes a shard buffers for one file between two ticks (lines past it are dropped).
const MAX_SHARD_BUFFER: usize = 1 << 20;
/// Chunks waiting for the writer, over all shards.
const QUEUE: usize = 32;

#[derive(Default)]
pub struct LogStats {
    /// Lines written to their files.
    pub written: AtomicU64,
    /// Lines dropped: a full queue or shard buffer, or a file that could not be written.
    pub dropped: AtomicU64,
}

/// A shard's lines for one file.
pub struct Chunk {
    destination: Arc<str>,
    bytes: Vec<u8>,
    lines: u64,
}

/// What the writer is sent.
pub enum ToWriter {
    Lines(Chunk),
    /// Every shard has stopped: write what is queued, then end.
    Stop,
}

/// The writer thread, and how to stop it once the shards have.
pub struct WriterHandle {
    queue: crossbeam_channel::Sender<ToWriter>,
    thread: std::thread::JoinHandle<()>,
}

impl WriterHandle {
    /// Call after the shards stopped (they hand over their last lines as they stop): the
    /// writer writes everything queued before it ends. An explicit message rather than the
    /// channel closing, since a shard's runtime may keep its senders alive past its thread.
    pub fn stop(self) {
        let _ = self.queue.send(ToWriter::Stop);
        let _ = self.thread.join();
    }
}

/// Starts the writer thread: returns the sender shards use, and its handle.
pub fn start_writer(
    dir: PathBuf,
    stats: Arc<LogStats>,
    reopen: Arc<AtomicBool>,
) -> std::io::Result<(crossbeam_channel::Sender<ToWriter>, WriterHandle)> {
    let (tx, rx) = crossbeam_channel::bounded::<ToWriter>(QUEUE);
    let thread = std::thread::Builder::new().name("access-log".into()).spawn(move || {
        let mut files: HashMap<Arc<str>, File> = HashMap::new();
        let mut last_complaint: HashMap<Arc<str>, Instant> = HashMap::new();
        for message in rx {
            let chunk = match message {
                ToWriter::Lines(chunk) => chunk,
                ToWriter::Stop => return,
            };
            if reopen.swap(false, Relaxed) {
                files.clear();
            }
            let result = match files.get_mut(&chunk.destination) {
                Some(file) => file.write_all(&chunk.bytes),
                None => open(&dir, &chunk.destination).and_then(|mut file| {
                    file.write_all(&chunk.bytes)?;
                    files.insert(chunk.destination.clone(), file);
                    Ok(())
                }),
            };
            match result {
                Ok(()) => {
                    stats.written.fetch_add(chunk.lines, Relaxed);
                }
                Err(e) => {
                    // Try opening afresh next time; complain at most every 10 s per file.
                    files.remove(&chunk.destination);
                    stats.dropped.fetch_add(chunk.lines, Relaxed);
                    let now = Instant::now();
                    let quiet = last_complaint
                        .get(&chunk.destination)
                        .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(10));
                    if !quiet {
                        let path = dir.join(&*chunk.destination);
                        log::warn!("access log {}: {e}; dropping its lines", path.display());
                        last_complaint.insert(chunk.destination.clone(), now);
                    }
                }
            }
        }
    })?;
    Ok((tx.clone(), WriterHandle { queue: tx, thread }))
}

/// Opens `dir/name` for appending, creating both as needed. The table decoder has checked that
/// `name` is a plain file name; `O_NOFOLLOW` refuses a symbolic link planted in its place.
fn open(dir: &Path, name: &str) -> std::io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if !proto::table::is_log_file_name(name) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain file name"));
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(name))
}

/// A shard's buffers, one per file its stages log to.
pub struct ShardLog {
    buffers: Vec<Buffer>,
    queue: crossbeam_channel::Sender<ToWriter>,
    stats: Arc<LogStats>,
}

struct Buffer {
    destination: Arc<str>,
    bytes: Vec<u8>,
    lines: u64,
}

impl ShardLog {
    pub fn new(queue: crossbeam_channel::Sender<ToWriter>, stats: Arc<LogStats>) -> ShardLog {
        ShardLog { buffers: Vec::new(), queue, stats }
    }

    /// Appends one line (written by `render`, without its newline) for `destination`.
    pub fn line(&mut self, destination: &str, render: impl FnOnce(&mut Vec<u8>)) {
        let index = match self.buffers.iter().position(|b| &*b.destination == destination) {
            Some(i) => i,
            None => {
                self.buffers.push(Buffer { destination: destination.into(), bytes: Vec::new(), lines: 0 });
                self.buffers.len() - 1
            }
        };
        let buffer = &mut self.buffers[index];
        if buffer.bytes.len() >= MAX_SHARD_BUFFER {
            self.stats.dropped.fetch_add(1, Relaxed);
            return;
        }
        render(&mut buffer.bytes);
        buffer.bytes.push(b'\n');
        buffer.lines += 1;
    }

    /// Hands the buffered lines to the writer (from the shard's tick); never waits. A buffer
    /// idle for a tick is given back.
    pub fn flush(&mut self) {
        let (queue, stats) = (&self.queue, &self.stats);
        self.buffers.retain_mut(|buffer| {
            if buffer.lines == 0 {
                return false;
            }
            let capacity = buffer.bytes.len().min(MAX_SHARD_BUFFER);
            let chunk = Chunk {
                destination: buffer.destination.clone(),
                bytes: std::mem::replace(&mut buffer.bytes, Vec::with_capacity(capacity)),
                lines: std::mem::take(&mut buffer.lines),
            };
            if let Err(e) = queue.try_send(ToWriter::Lines(chunk)) {
                if let ToWriter::Lines(chunk) = e.into_inner() {
                    stats.dropped.fetch_add(chunk.lines, Relaxed);
                }
            }
            true
        });
    }
}
