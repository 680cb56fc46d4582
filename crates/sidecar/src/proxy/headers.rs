//! Header rules a proxy must apply between its two connections.
//!
//! Hop-by-hop headers describe one connection and must not be forwarded (RFC 9110 §7.6.1):
//! `Connection` and every header it names, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`,
//! `TE` (except `trailers`, which gRPC needs), `Upgrade` (unless the exchange is an upgrade),
//! and `Proxy-Authorization` (credentials for this proxy, not for the app). `Expect:
//! 100-continue` is answered by the sidecar's own server and not forwarded, as Envoy does by
//! default (`proxy_100_continue: false`). hyper frames the bodies of each side itself, so the
//! framing headers of the other side must go.
//!
//! Forwarding headers follow Envoy in a sidecar (Istio sets `use_remote_address: false` on
//! sidecar listeners): `x-forwarded-for` is passed through untouched (Envoy appends to it only
//! with `use_remote_address: true`, as on gateways), and `x-forwarded-proto` is set to `http`
//! when absent (`ConnectionManagerUtility::mutateRequestHeaders`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Version};

use crate::received::{Known, Received};

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
/// HTTP/2 has no `Upgrade`; `CONNECT` is not an upgrade the sidecar tunnels; and `h2c` is
/// dropped as Envoy's HTTP/1 codec drops it (the hop's protocol is the sidecar's choice, and
/// prior-knowledge HTTP/2 is served directly).
pub(crate) fn is_upgrade_request(head: &Parts) -> bool {
    let Some(upgrade) = head.headers.get(header::UPGRADE) else {
        return false;
    };
    head.version == Version::HTTP_11
        && head.method != Method::CONNECT
        && !upgrade.as_bytes().eq_ignore_ascii_case(b"h2c")
        && connection_has(&head.headers, "upgrade")
}

/// Removes hop-by-hop headers from a request about to be forwarded; `received` is what it held
/// (each rule touches the map only for a header that is there). Returns `received` without the
/// headers removed, for the observers that read the request next.
pub(crate) fn strip_request(
    headers: &mut HeaderMap,
    mut received: Received,
    upgrade: bool,
) -> Received {
    strip_common(headers, &mut received, upgrade);
    if received.has(Known::ProxyAuthorization) {
        remove(headers, &mut received, &header::PROXY_AUTHORIZATION);
    }
    if received.has(Known::Expect)
        && headers
            .get(header::EXPECT)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        remove(headers, &mut received, &header::EXPECT);
    }
    if received.has(Known::Te) && !strip_te(headers) {
        received.forget(&header::TE);
    }
    received
}

/// Keeps only `TE: trailers` (gRPC's), and leaves the usual lone `trailers` as it is; returns
/// whether a `TE` header is left.
fn strip_te(headers: &mut HeaderMap) -> bool {
    let mut values = headers.get_all(header::TE).iter();
    if values.next().is_some_and(|value| value == "trailers") && values.next().is_none() {
        return true;
    }
    let keeps_trailers = headers.get_all(header::TE).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',').any(|token| {
                let token = token.split(';').next().unwrap_or("").trim();
                token.eq_ignore_ascii_case("trailers")
            })
        })
    });
    headers.remove(header::TE);
    if keeps_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    keeps_trailers
}

/// Removes hop-by-hop headers from a response about to be sent downstream; `upgrade` keeps
/// the `Upgrade` header of a `101 Switching Protocols`.
/// Returns the known headers the response holds then, for the observers that read it next.
pub(crate) fn strip_response(headers: &mut HeaderMap, upgrade: bool) -> Received {
    let mut received = Received::scan(headers);
    strip_common(headers, &mut received, upgrade);
    received
}

/// Sets `x-forwarded-proto: http` unless the caller already set it.
pub(crate) fn add_forwarded_proto(headers: &mut HeaderMap) {
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
}

/// Removes `name` from the message and from what it is known to hold.
fn remove(headers: &mut HeaderMap, received: &mut Received, name: &HeaderName) {
    headers.remove(name);
    received.forget(name);
}

fn strip_common(headers: &mut HeaderMap, received: &mut Received, upgrade: bool) {
    if received.has(Known::Connection) {
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            let Ok(text) = value.to_str() else {
                continue;
            };
            for token in text.split(',') {
                let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) else {
                    continue;
                };
                // Never let a client drop what routing and framing need, nor the upgrade itself.
                if name == header::HOST || name == header::CONTENT_LENGTH || name == header::UPGRADE
                {
                    continue;
                }
                named.push(name);
            }
        }
        for name in named {
            remove(headers, received, &name);
        }
        remove(headers, received, &header::CONNECTION);
    }
    if received.has(Known::KeepAlive) {
        remove(headers, received, &KEEP_ALIVE);
    }
    if received.has(Known::ProxyConnection) {
        remove(headers, received, &PROXY_CONNECTION);
    }
    if received.has(Known::TransferEncoding) {
        remove(headers, received, &header::TRANSFER_ENCODING);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        received.remember(&header::CONNECTION);
    } else if received.has(Known::Upgrade) {
        remove(headers, received, &header::UPGRADE);
    }
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|text| text.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules as the proxy applies them: on the message as it was received.
    fn strip_request(headers: &mut HeaderMap, upgrade: bool) {
        let left = super::strip_request(headers, Received::scan(headers), upgrade);
        assert_eq!(left, Received::scan(headers), "the set follows what was removed");
    }

    fn strip_response(headers: &mut HeaderMap, upgrade: bool) {
        let left = super::strip_response(headers, upgrade);
        assert_eq!(left, Received::scan(headers), "the set follows what was removed");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn request_hop_by_hop_headers_go_end_to_end_headers_stay() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-hop, Host"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip, trailers;q=1"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("expect", "100-continue"),
            ("host", "reviews:9080"),
            ("x-end-to-end", "kept"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        strip_request(&mut map, false);
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["host", "te", "x-end-to-end", "x-forwarded-for"]);
        assert_eq!(map["te"], "trailers");
        assert_eq!(map["x-forwarded-for"], "10.0.0.1");
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "te",
        ] {
            let mut request = headers(&[(name, "x"), ("x-end-to-end", "kept")]);
            strip_request(&mut request, false);
            assert_eq!(request.keys().collect::<Vec<_>>(), ["x-end-to-end"], "{name}");
            if name != "proxy-authorization" && name != "te" {
                let mut response = headers(&[(name, "x"), ("x-end-to-end", "kept")]);
                strip_response(&mut response, false);
                assert_eq!(response.keys().collect::<Vec<_>>(), ["x-end-to-end"], "{name}");
            }
        }
        let mut request = headers(&[("expect", "100-continue"), ("host", "reviews:9080")]);
        strip_request(&mut request, false);
        assert_eq!(request.keys().collect::<Vec<_>>(), ["host"]);
        // Only 100-continue is the sidecar's to answer.
        let mut request = headers(&[("expect", "something-else")]);
        strip_request(&mut request, false);
        assert_eq!(request["expect"], "something-else");
    }

    #[test]
    fn end_to_end_headers_pass_untouched() {
        let pairs = [("host", "reviews:9080"), ("x-request-id", "a"), ("accept", "*/*")];
        let mut request = headers(&pairs);
        strip_request(&mut request, false);
        assert_eq!(request, headers(&pairs));
        let mut response = headers(&pairs);
        strip_response(&mut response, false);
        assert_eq!(response, headers(&pairs));
    }

    #[test]
    fn te_without_trailers_is_removed() {
        let mut map = headers(&[("te", "gzip")]);
        strip_request(&mut map, false);
        assert!(map.is_empty());
    }

    #[test]
    fn websocket_is_an_upgrade_h2c_is_not() {
        let head = |upgrade: &str| {
            let request = http::Request::get("/")
                .header("connection", "Upgrade, HTTP2-Settings")
                .header("upgrade", upgrade)
                .body(());
            request.map(|r| r.into_parts().0).unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(is_upgrade_request(&head("websocket")));
        assert!(!is_upgrade_request(&head("h2c")));
    }

    #[test]
    fn upgrades_keep_upgrade_and_connection_upgrade() {
        let mut map = headers(&[("connection", "Upgrade, keep-alive"), ("upgrade", "websocket")]);
        strip_response(&mut map, true);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
    }

    #[test]
    fn forwarded_proto_is_kept_when_present() {
        let mut map = headers(&[("x-forwarded-proto", "https")]);
        add_forwarded_proto(&mut map);
        assert_eq!(map["x-forwarded-proto"], "https");
        let mut map = HeaderMap::new();
        add_forwarded_proto(&mut map);
        assert_eq!(map["x-forwarded-proto"], "http");
    }
}
