//! Admission limits shared by every shard, lock-free: [`throttle`] (one GCRA cell per limit)
//! and [`quota`] (one counting cell per API key and period).

pub mod quota;
pub mod throttle;
