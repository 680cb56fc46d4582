//! The size of a message head as HTTP/1.1 writes it: what Istio's size histograms count besides
//! the body. istio-proxy meters the downstream connection's wire bytes, headers included
//! (mesh-tracing-spec §3), so a bodyless `GET` is a few hundred bytes there, not 0.
//!
//! The head is measured from its parts (start line, each `name: value`, the line ends), which
//! is the bytes a client sent up to the spelling of names and optional whitespace. HTTP/2 heads
//! are counted the same way, uncompressed: HPACK's size depends on the connection's header
//! table, which hyper does not expose, and the text size bounds it from above. A response is
//! measured as the proxy hands it to hyper: what hyper adds as it writes (a `date` or
//! `content-length` the response lacks, `transfer-encoding: chunked` for a body of unknown
//! length) is not counted.

use http::{HeaderMap, StatusCode, Uri};

/// `GET /path HTTP/1.1\r\n`, the headers and the blank line.
pub fn request_head_len(head: &http::request::Parts) -> u64 {
    let start_line = head.method.as_str().len() + 1 + target_len(&head.uri) + 1 + VERSION + CRLF;
    to_u64(start_line + headers_len(&head.headers) + CRLF)
}

/// `HTTP/1.1 200 OK\r\n`, the headers and the blank line.
pub fn response_head_len(status: StatusCode, headers: &HeaderMap) -> u64 {
    let reason = status.canonical_reason().map_or(0, str::len);
    let start_line = VERSION + 1 + 3 + 1 + reason + CRLF;
    to_u64(start_line + headers_len(headers) + CRLF)
}

/// `HTTP/1.1`.
const VERSION: usize = 8;
const CRLF: usize = 2;

/// The request target as written: origin form, absolute form when the URI has a scheme (an
/// absolute-form request, or an HTTP/2 one), authority form for `CONNECT`.
fn target_len(uri: &Uri) -> usize {
    let path = uri.path_and_query().map_or(0, |path| path.as_str().len());
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => scheme.len() + 3 + authority.as_str().len() + path,
        (None, Some(authority)) if path == 0 => authority.as_str().len(),
        _ => path.max(1),
    }
}

/// `name: value\r\n` for each value.
fn headers_len(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + 2 + value.len() + CRLF).sum()
}

fn to_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request};

    use super::*;

    fn head(request: http::request::Builder) -> http::request::Parts {
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_request_head_is_its_http1_text() {
        let get = head(Request::get("/productpage?u=1").header("host", "productpage:9080"));
        let text = "GET /productpage?u=1 HTTP/1.1\r\nhost: productpage:9080\r\n\r\n";
        assert_eq!(request_head_len(&get), text.len() as u64);
        let absolute = head(Request::get("http://reviews:9080/reviews/0"));
        assert_eq!(
            request_head_len(&absolute),
            "GET http://reviews:9080/reviews/0 HTTP/1.1\r\n\r\n".len() as u64
        );
        let connect = head(Request::connect("api.example.com:443"));
        assert_eq!(
            request_head_len(&connect),
            "CONNECT api.example.com:443 HTTP/1.1\r\n\r\n".len() as u64
        );
    }

    #[test]
    fn a_response_head_is_its_http1_text() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("6"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let text =
            "HTTP/1.1 200 OK\r\ncontent-length: 6\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n\r\n";
        assert_eq!(response_head_len(StatusCode::OK, &headers), text.len() as u64);
        let bare = "HTTP/1.1 599 \r\n\r\n";
        assert_eq!(
            response_head_len(StatusCode::from_u16(599).unwrap(), &HeaderMap::new()),
            bare.len() as u64
        );
    }
}
