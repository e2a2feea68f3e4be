//! `kind: Account`: account-wide settings (the account throttle), and the throttle shape
//! every object uses.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub kind: String,
    #[serde(default)]
    pub throttle: Option<Throttle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    pub rate: f64,
    pub burst: u64,
}
