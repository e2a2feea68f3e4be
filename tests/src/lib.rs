//! The end-to-end harness: builds and starts the real binaries on port 0, runs a real origin
//! server, and speaks raw HTTP/1.1 to both, so every byte on the wire is under the test's
//! control (malformed requests included).

pub mod client;
pub mod origin;
pub mod process;

pub use client::{Client, Response};
pub use origin::Origin;
pub use process::{ControlPlane, Dataplane, DataplaneOptions};
