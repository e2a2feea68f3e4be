//! Any bytes as a manifest file: parsing and compiling never panic, and whatever compiles
//! encodes into a table the decoder accepts.
#![no_main]

use controlplane::compile;
use controlplane::manifest::{self, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parsed = Manifest::default();
    let mut errors = Vec::new();
    let complete = manifest::parse_into("fuzz.yaml", text, &mut parsed, &mut errors);
    if !errors.is_empty() {
        let _ = controlplane::with_compile_errors(&parsed, errors, complete);
        return;
    }
    if let Ok(table) = compile::compile(&parsed, 1) {
        let bytes = proto::table::encode(&table);
        proto::table::decode(&bytes).expect("a compiled table decodes");
    }
});
