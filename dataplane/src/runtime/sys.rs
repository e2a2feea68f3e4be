//! The data plane's only `unsafe`: thin wrappers over libc calls that std and monoio do not
//! offer. Each block says why it is sound.

use std::io;
use std::os::fd::RawFd;

/// Shuts down the reading side of a socket. On a listening socket this makes a pending
/// `accept` fail (EINVAL) on both io_uring and epoll, which is how a shard learns that it must
/// stop accepting; on a connection it makes a pending read return end-of-file.
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown(2) takes any integer; on a closed or foreign descriptor it fails with
    // EBADF or ENOTSOCK and touches no memory.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// Shuts down both directions of a connection, so its task sees end-of-file on read and an
/// error on write and ends.
pub fn shutdown_both(fd: RawFd) {
    // SAFETY: as in `shutdown_read`.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// True when an idle connection is exactly as the last exchange left it: nothing unread and
/// not closed by the peer. One non-blocking `recv(MSG_PEEK)`, which consumes nothing; any
/// readable byte (a second response, a late HEAD body) or end-of-file means the connection
/// must not carry another request.
pub fn idle_connection_is_clean(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv(2) writes at most 1 byte into `byte`, which lives for the call; MSG_DONTWAIT
    // makes it return at once whatever the descriptor's mode; a bad descriptor is an error.
    let n = unsafe { libc::recv(fd, (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && matches!(io::Error::last_os_error().raw_os_error(), Some(libc::EAGAIN))
}

/// The signals the process handles itself.
pub const HANDLED_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given; sigaddset only writes into it; the
    // signal numbers are valid constants.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the handled signals in the calling thread; threads spawned afterwards inherit the
/// mask, so only [`wait_signal`] ever receives them (no async-signal-safety concerns).
pub fn block_signals() -> io::Result<()> {
    let set = signal_set();
    // SAFETY: `set` is a valid, initialised sigset_t; passing null for the old mask is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Waits for one of the handled signals and returns its number.
pub fn wait_signal() -> libc::c_int {
    let set = signal_set();
    let mut sig: libc::c_int = 0;
    loop {
        // SAFETY: `set` is initialised and `sig` is a valid place for the result.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc == 0 {
            return sig;
        }
    }
}

/// CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set of the size given; CPU_ISSET reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect()
    }
}

/// Raises the soft limit on open files to the hard limit (as nginx's worker_rlimit_nofile
/// does): every client and upstream connection is a descriptor, and the common default soft
/// limit of 1,024 would cap the gateway far below its capacity. Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    // SAFETY: getrlimit/setrlimit read and write the `rlimit` value we pass, nothing else.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(limit.rlim_cur)
    }
}

/// The initialised bytes of a buffer monoio lends a write (the TLS layer encrypts them).
pub fn io_buf_bytes<T: monoio::buf::IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: IoBuf promises `read_ptr` points at `bytes_init` initialised bytes that stay
    // valid while `buf` is borrowed, which the returned slice's lifetime ties to.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// Copies as much of `src` as fits into the free part of a buffer monoio lends a read, marks
/// it initialised, and returns how much was copied (the TLS layer's decrypted bytes).
pub fn fill_io_buf<T: monoio::buf::IoBufMut>(buf: &mut T, src: &[u8]) -> usize {
    let n = src.len().min(buf.bytes_total());
    // SAFETY: IoBufMut promises `write_ptr` points at `bytes_total` writable bytes; we write
    // `n` of them from `src`, which cannot overlap a buffer we hold mutably, through a raw
    // pointer (never a slice over possibly uninitialised memory), then declare exactly those
    // `n` bytes initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf.write_ptr(), n);
        buf.set_init(n);
    }
    n
}

/// Reads what a socket has already received into the spare capacity of `buf`, without
/// waiting: `None` when nothing is there, `Some(0)` at end of stream.
pub fn recv_nonblocking(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let spare = buf.capacity() - buf.len();
    if spare == 0 {
        return Ok(None);
    }
    // SAFETY: recv(2) writes at most `spare` bytes at the end of the vector's initialised
    // part, all within its allocation; MSG_DONTWAIT returns at once; the vector's length is
    // raised by exactly the bytes written.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().add(buf.len()).cast(), spare, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: recv initialised these `n` bytes.
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(Some(n as usize))
}
