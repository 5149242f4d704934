//! `http::HeaderMap` conversions (feature `http`).

use super::error::S3Error;
use super::request::{SseRequest, Transport};

impl SseRequest {
    /// [`SseRequest::from_headers`] over an `http::HeaderMap`.
    pub fn from_header_map(
        headers: &http::HeaderMap,
        transport: Transport,
    ) -> Result<Self, S3Error> {
        SseRequest::from_headers(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
            transport,
        )
    }
}

/// Appends response headers (from [`super::response_headers`]) to `map`.
pub fn extend_header_map(
    map: &mut http::HeaderMap,
    headers: &[(&'static str, String)],
) -> Result<(), S3Error> {
    for (name, value) in headers {
        let name =
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| S3Error::internal())?;
        let value = http::HeaderValue::from_str(value).map_err(|_| S3Error::internal())?;
        map.append(name, value);
    }
    Ok(())
}
