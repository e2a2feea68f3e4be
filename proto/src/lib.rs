//! The contracts between the control plane and the data plane.
//!
//! - [`table`]: the compiled routing table (rkyv), its encoding and its one-time validation.
//! - [`tree`]: builds a stage's route tree from route paths (used by the compiler).
//! - [`lookup`]: the pure, allocation-free lookup the data plane runs per request.

pub mod lookup;
pub mod table;
pub mod tree;
