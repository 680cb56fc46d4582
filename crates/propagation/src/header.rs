//! Writing one propagation header.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The length of `value` as text, counted while it is formatted instead of formatting it into
/// a string first: limits are checked on every member added.
pub(crate) fn display_len(value: &impl fmt::Display) -> usize {
    struct Counter(usize);
    impl fmt::Write for Counter {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0 += text.len();
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to the counter cannot fail; a failing `Display` impl would be a bug anyway.
    let _ = fmt::write(&mut counter, format_args!("{value}"));
    counter.0
}

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

/// A header map of `(name, value)` fields, in order (repeats appended), for tests.
#[cfg(test)]
#[allow(clippy::expect_used, reason = "a malformed fixture should fail the test loudly")]
pub(crate) fn fixture(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
        map.append(name, HeaderValue::from_str(value).expect("test header value"));
    }
    map
}
