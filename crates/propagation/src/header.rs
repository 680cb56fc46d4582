//! Writing one propagation header.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Sets `name` to `value`, or removes it when there is nothing to send: the specifications ask
/// for no empty headers, and a stale value from the caller must not be forwarded.
pub(crate) fn set_or_remove(headers: &mut HeaderMap, name: HeaderName, value: Option<HeaderValue>) {
    match value {
        Some(value) => {
            headers.insert(name, value);
        }
        None => {
            headers.remove(name);
        }
    }
}
