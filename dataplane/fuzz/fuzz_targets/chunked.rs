//! Any bytes as a chunked body: never a panic, and feeding them in two pieces decodes exactly
//! as feeding them at once (the decoder's state carries across reads correctly).
#![no_main]

use dataplane::http1::chunked::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (split, data) = input;
    let split = usize::from(split) % (data.len() + 1);
    let mut whole = ChunkedDecoder::new(1 << 16);
    let mut whole_out = Vec::new();
    let whole_result = whole.decode(data, &mut whole_out);

    let mut parts = ChunkedDecoder::new(1 << 16);
    let mut parts_out = Vec::new();
    let first = parts.decode(&data[..split], &mut parts_out);
    let parts_result = match first {
        Ok(n) if parts.is_done() => Ok(n),
        Ok(n) => {
            assert_eq!(n, split, "an unfinished decoder consumes all it is given");
            parts.decode(&data[split..], &mut parts_out).map(|m| n + m)
        }
        Err(e) => Err(e),
    };
    match (whole_result, parts_result) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert_eq!(whole.is_done(), parts.is_done());
            assert_eq!(whole_out, parts_out);
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("whole {a:?} vs parts {b:?}"),
    }
});
