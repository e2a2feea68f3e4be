//! Any bytes as a request head: never a panic, and a parsed head is consistent with them.
#![no_main]

use dataplane::http1::head::{self, Framing, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_uri: 512, max_header_bytes: 1024, max_body: 1 << 20 };
    let mut spans = Vec::new();
    // A head still arriving is checked line by line, in any split: never a panic.
    let mut progress = head::Progress::default();
    let split = data.len() / 2;
    let _ = progress.check(&data[..split]).and_then(|()| progress.check(data));
    if let Ok(Some(h)) = head::parse(data, &mut spans, &limits) {
        assert!(h.len <= data.len());
        assert!(h.target.len() <= limits.max_uri);
        assert!(h.target.starts_with('/') || h.target == "*");
        if let Framing::Length(n) = h.framing {
            assert!(n > 0 && n <= limits.max_body);
        }
        if h.minor_version == 1 {
            assert!(h.host.is_some());
        }
        // Parsing the exact head again gives the same answer.
        let mut again = Vec::new();
        let h2 = head::parse(&data[..h.len], &mut again, &limits).ok().flatten().expect("reparse");
        assert_eq!((h2.len, h2.framing, h2.keep_alive), (h.len, h.framing, h.keep_alive));
    }
});
