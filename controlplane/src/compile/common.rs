//! What every object's compiler shares: stable ids, the located error list, name rules and
//! throttle limits. The bottom of `compile`: it imports nothing of its siblings.

use crate::manifest::{self, Located, ManifestError};
use proto::table;

/// 64-bit FNV-1a: a stable id from names, identical in every version and on every machine.
pub fn stable_id(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= 0x1f;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

pub struct Errors {
    pub list: Vec<ManifestError>,
}

impl Errors {
    /// The errors, each once, in the order first found: a route that two stages serve (or
    /// that is checked alone and again for its stage) reports its fault once.
    pub fn into_unique(self) -> Vec<ManifestError> {
        let mut seen = std::collections::HashSet::new();
        self.list.into_iter().filter(|e| seen.insert(e.to_string())).collect()
    }

    pub fn at<T>(&mut self, doc: &Located<T>, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.list.push(ManifestError {
            file: doc.file.clone(),
            line: Some(doc.line_of(&path)),
            path,
            message: message.into(),
        });
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Largest rate and burst a throttle may have.
const MAX_THROTTLE: f64 = 1e9;

/// Why a throttle's numbers are out of range, if they are.
pub fn check_throttle(t: &manifest::Throttle) -> Result<(), String> {
    if !(t.rate.is_finite() && t.rate > 0.0 && t.rate <= MAX_THROTTLE) {
        return Err(format!("rate must be above 0 and at most {MAX_THROTTLE:e} per second"));
    }
    if t.burst as f64 > MAX_THROTTLE {
        return Err(format!("burst must be at most {MAX_THROTTLE:e}"));
    }
    Ok(())
}

/// Adds a throttle (or finds the one with the same id) and returns its index.
pub fn add_limit(limits: &mut Vec<table::Limit>, id: u64, t: &manifest::Throttle) -> Result<u32, String> {
    check_throttle(t)?;
    if let Some(i) = limits.iter().position(|l| l.id == id) {
        return Ok(i as u32);
    }
    let interval_ns = ((1e9 / t.rate).round() as u64).max(1);
    limits.push(table::Limit { id, interval_ns, burst: t.burst });
    Ok((limits.len() - 1) as u32)
}
