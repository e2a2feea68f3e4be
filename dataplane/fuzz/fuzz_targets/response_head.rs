//! Any bytes as an upstream response head (and the paths the router normalises): never a
//! panic, and a parsed head is consistent with its bytes.
#![no_main]

use dataplane::http1::path;
use dataplane::http1::response_head::{self, ResponseFraming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max_body = 1 << 20;
    let mut headers = Vec::new();
    if let Ok(Some(h)) = response_head::parse(data, &mut headers, max_body) {
        assert!(h.len <= data.len());
        for &(ns, ne, vs, ve) in &headers {
            assert!(ns <= ne && ne as usize <= h.len && vs <= ve && ve as usize <= h.len);
        }
        if let ResponseFraming::Length(n) = h.framing {
            assert!(n <= max_body && h.content_length == Some(n));
        }
        let mut again = Vec::new();
        let h2 = response_head::parse(&data[..h.len], &mut again, max_body).ok().flatten().expect("reparse");
        assert_eq!(h2, h);
    }
    // A normalised path has no dot segment left and never climbs above the root.
    if let Ok(text) = std::str::from_utf8(data) {
        if text.starts_with('/') && !text.contains('?') {
            if let Ok(normal) = path::normalize(text) {
                assert!(normal.starts_with('/'));
                assert!(normal.split('/').all(|s| s != "." && s != ".."));
                assert_eq!(path::normalize(&normal).ok().as_deref(), Some(&*normal), "idempotent");
            }
            let _ = path::parameter_is_contained(text);
        }
    }
});
