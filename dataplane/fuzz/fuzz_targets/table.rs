//! Any bytes as the body of a routing table whose digest matches (what a compromised or buggy
//! control plane could send): the decoder refuses them or accepts a table every lookup can
//! walk without a panic, and whose certificates become HTTPS sites or are left out with a log
//! line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::lookup::{self, Captures};
use proto::table::{self, Method};
use sha2::Digest;

fuzz_target!(|data: &[u8]| {
    let mut bytes = table::MAGIC.to_vec();
    bytes.extend_from_slice(&sha2::Sha256::digest(data));
    bytes.extend_from_slice(data);
    let Ok(decoded) = table::decode(&bytes) else { return };
    let t = decoded.get();
    for domain in t.domains.iter() {
        for path in ["/", "/a/b", "/pets/1/x"] {
            let Some(found) = lookup::find_stage(t, domain.host.as_str(), path) else { continue };
            let stage = &t.stages[found.stage as usize];
            let mut captures = Captures::default();
            for method in [Some(Method::Get), Some(Method::Post), None] {
                let _ = lookup::find_route(&stage.routes, method, found.path, &mut captures);
            }
        }
    }
    let _ = lookup::find_stage(t, "api.execute-api", "/prod/x");
    let sites = dataplane::tls::sites::Sites::build(t, None);
    for domain in t.domains.iter() {
        let _ = sites.select(Some(domain.host.as_str()));
    }
});
