//! CORS for browser clients: `allowed_origins` with `*` wildcards, as the collector's
//! `cors` block defines them.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, header};
use http_body_util::Full;

use super::config::CorsConfig;

/// Headers a browser may always send to OTLP/HTTP, besides the configured ones.
const DEFAULT_ALLOWED_HEADERS: [&str; 4] =
    ["accept", "content-type", "content-encoding", "x-requested-with"];

/// Whether `origin` matches a pattern such as `https://*.example.com` or `*`.
fn origin_allowed(cors: &CorsConfig, origin: &str) -> bool {
    cors.allowed_origins.iter().any(|pattern| wildcard_match(pattern, origin))
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(text),
        Some((prefix, suffix)) => {
            text.len() >= prefix.len() + suffix.len()
                && text[..prefix.len()].eq_ignore_ascii_case(prefix)
                && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
    }
}

/// Adds the allow-origin header to an actual (non-preflight) response when the origin is allowed.
pub(crate) fn allow_origin(cors: &CorsConfig, origin: &HeaderValue, headers: &mut HeaderMap) {
    let Ok(text) = origin.to_str() else { return };
    if origin_allowed(cors, text) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Answers an `OPTIONS` preflight: 204, with permission headers only for an allowed origin and
/// allowed request headers.
pub(crate) fn preflight(cors: &CorsConfig, request: &HeaderMap) -> Response<Full<Bytes>> {
    let mut response = pipeline::http_server::respond(204, "text/plain", Bytes::new());
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    let Some(origin) = request.get(header::ORIGIN) else { return response };
    let Ok(origin_text) = origin.to_str() else { return response };
    if !origin_allowed(cors, origin_text) {
        return response;
    }
    let method_ok = request
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_some_and(|m| m.as_bytes().eq_ignore_ascii_case(b"POST"));
    if !method_ok {
        return response;
    }
    let requested: Vec<String> = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
        })
        .unwrap_or_default();
    let allow_any = cors.allowed_headers.iter().any(|h| h == "*");
    let header_ok = |name: &String| {
        allow_any
            || DEFAULT_ALLOWED_HEADERS.contains(&name.as_str())
            || cors.allowed_headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    };
    if !requested.iter().all(header_ok) {
        return response;
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    if !requested.is_empty()
        && let Ok(value) = HeaderValue::from_str(&requested.join(", "))
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    if cors.max_age > 0 {
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(cors.max_age));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_the_collector() {
        assert!(wildcard_match("*", "https://anything"));
        assert!(wildcard_match("https://*.example.com", "https://app.example.com"));
        assert!(!wildcard_match("https://*.example.com", "https://example.org"));
        assert!(wildcard_match("http://localhost:3000", "http://LOCALHOST:3000"));
        assert!(!wildcard_match("https://*.example.com", ".example.com"));
    }
}
