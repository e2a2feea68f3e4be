//! The MOCK integration: the response comes from the table, no backend is called.

use crate::http1::response::{self, Common};
use proto::table::ArchivedMockIntegration;

pub fn respond(mock: &ArchivedMockIntegration, out: &mut Vec<u8>, common: &Common<'_>) {
    response::start(out, common, mock.status.to_native());
    let mut has_content_type = false;
    for h in mock.headers.iter() {
        has_content_type |= h.name.eq_ignore_ascii_case("content-type");
        response::write_header(out, h.name.as_bytes(), h.value.as_bytes());
    }
    // AWS adds a Content-Type to every integration response.
    if !has_content_type {
        response::write_header(out, b"content-type", b"application/json");
    }
    response::finish(out, common, &mock.body, None);
}
