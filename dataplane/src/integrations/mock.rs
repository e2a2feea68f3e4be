//! The MOCK integration: the response comes from the table, no backend is called.

use super::{Answer, Headers};
use proto::table::ArchivedMockIntegration;

pub fn answer(mock: &ArchivedMockIntegration) -> Answer<'_> {
    Answer {
        status: mock.status.to_native(),
        headers: Headers::Table(&mock.headers),
        body: &mock.body,
        content_length: None,
    }
}
