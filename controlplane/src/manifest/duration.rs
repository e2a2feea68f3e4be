//! Durations written as text in manifests: `29s`, `500ms`, `5m`, `1h`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A duration written as text: `29s`, `500ms`, `5m`, `1h`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DurationText(pub String);

impl DurationText {
    pub fn parse(&self) -> Result<Duration, String> {
        parse_duration(&self.0)
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 =
        digits.parse().map_err(|_| format!("'{text}' is not a duration; write it like 29s, 500ms or 5m"))?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("'{text}' has no known unit; use ms, s, m or h")),
    };
    millis.map(Duration::from_millis).ok_or_else(|| format!("'{text}' is too long a duration"))
}
