//! The `Date` header value, formatted once per second rather than per response, and
//! refreshed by the shard's sweeper (so a response never reads the clock).

use std::time::{SystemTime, UNIX_EPOCH};

pub struct DateCache {
    second: u64,
    text: [u8; 29],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut cache = DateCache { second: u64::MAX, text: [b' '; 29] };
        cache.refresh();
        cache
    }
}

impl DateCache {
    /// The date as of the last [`refresh`](Self::refresh).
    pub fn get(&self) -> &[u8; 29] {
        &self.text
    }

    /// Re-reads the clock; reformats only when the second has changed.
    pub fn refresh(&mut self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now != self.second {
            self.second = now;
            self.text = format_imf_fixdate(now);
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the Unix epoch.
pub fn format_imf_fixdate(unix_seconds: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = [0u8; 29];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    two(&mut out[5..7], day);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    let y = year as u32;
    out[12] = b'0' + (y / 1000 % 10) as u8;
    out[13] = b'0' + (y / 100 % 10) as u8;
    two(&mut out[14..16], y % 100);
    out[16] = b' ';
    two(&mut out[17..19], (secs / 3600) as u32);
    out[19] = b':';
    two(&mut out[20..22], (secs / 60 % 60) as u32);
    out[22] = b':';
    two(&mut out[23..25], (secs % 60) as u32);
    out[25..29].copy_from_slice(b" GMT");
    out
}

fn two(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_dates() {
        assert_eq!(&super::format_imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&super::format_imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&super::format_imf_fixdate(1_709_210_096), b"Thu, 29 Feb 2024 12:34:56 GMT");
    }
}
