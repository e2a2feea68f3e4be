//! The io driver a shard runs on: io_uring with the setup flags that matter most on this
//! machine kind, plain io_uring, or epoll (monoio's legacy driver), with the fallbacks `auto`
//! allows.

use std::future::Future;
use std::io;

/// Which io driver shards run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoDriver {
    /// io_uring with COOP_TASKRUN, SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them,
    /// then plain io_uring, then epoll.
    Auto,
    /// io_uring only (tuned flags when available); fail if the kernel refuses io_uring.
    Uring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

const URING_TUNED: &str = "io_uring (coop_taskrun, single_issuer, defer_taskrun)";
const URING_PLAIN: &str = "io_uring";
const EPOLL: &str = "epoll";

/// Builds a runtime of the requested kind, falling back as `driver` allows, and runs the
/// future the factory makes on it. `started` is told which driver was chosen.
pub fn run_with_driver<F, Fut>(
    driver: IoDriver,
    make: F,
    started: impl Fn(&'static str),
) -> io::Result<(&'static str, Fut::Output)>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
    if driver != IoDriver::Epoll {
        let mut tuned = io_uring::IoUring::builder();
        tuned.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
        let attempts = [(tuned, URING_TUNED), (io_uring::IoUring::builder(), URING_PLAIN)];
        let mut last_error = None;
        for (builder, name) in attempts {
            match RuntimeBuilder::<IoUringDriver>::new().enable_timer().uring_builder(builder).build() {
                Ok(mut rt) => {
                    started(name);
                    return Ok((name, rt.block_on(make())));
                }
                // EINVAL: flags unknown to this kernel; ENOMEM: memlock too small for the
                // ring; ENOSYS/EPERM: io_uring unavailable or disabled.
                Err(e) => last_error = Some(e),
            }
        }
        if driver == IoDriver::Uring {
            let e = last_error.unwrap_or_else(|| io::Error::other("io_uring unavailable"));
            return Err(io::Error::new(e.kind(), format!("io_uring unavailable: {e}")));
        }
    }
    let mut rt = RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()?;
    started(EPOLL);
    Ok((EPOLL, rt.block_on(make())))
}
