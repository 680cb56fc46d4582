use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Request, StatusCode, Version};

use super::*;
use crate::config::{CustomTag, SidecarConfig};
use crate::observe::Direction;
use crate::received::Received;
use crate::trace::span::AttributeFields;

fn config() -> SidecarConfig {
    let text = "kind: Sidecar\nmetadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}\n";
    crate::config::load(text, "t.yaml").unwrap()
}

fn env() -> Environment {
    let vars = [("INSTANCE_IP", "10.0.0.7"), ("POD_NAME", "reviews-v1-abc"), ("CLUSTER", "east")];
    Environment::Fixed(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

fn direction_tags(custom: Vec<CustomTag>, istio: bool, max_path: u32) -> DirectionTags {
    let config = config();
    let mut settings = DirectionSettings::off();
    settings.custom_tags = custom;
    settings.enable_istio_tags = istio;
    settings.max_path_tag_length = max_path;
    let local = LocalInfo::new(&config, &env());
    DirectionTags::new(&settings, &config.workload, &local, &env())
}

fn default_tags() -> DirectionTags {
    direction_tags(Vec::new(), true, 256)
}

fn request(builder: http::request::Builder) -> http::request::Parts {
    builder.body(()).unwrap().into_parts().0
}

fn read(tags: &DirectionTags, head: &mut http::request::Parts, cluster: &str) -> RequestInfo {
    let received = Received::scan(&head.headers);
    let grpc = crate::grpc::is_grpc_request(&head.headers, received);
    let view = RequestView {
        direction: Direction::Inbound,
        head,
        peer: "10.0.0.9:43210".parse().unwrap(),
        local: "10.0.0.7:15006".parse().unwrap(),
        upstream_cluster: cluster,
        started: SystemTime::now(),
        received,
        routed_authority: None,
        grpc,
        head_bytes: 0,
    };
    RequestInfo::read(tags, &view, false)
}

fn completion(trailers: Option<&HeaderMap>) -> Completion<'_> {
    Completion {
        request_body_bytes: 12,
        response_body_bytes: 3456,
        response_head_bytes: 0,
        trailers,
        response_flags: "-",
        duration: Duration::from_millis(5),
    }
}

fn response(status: u16) -> ResponseInfo {
    ResponseInfo { status, upstream: Some("127.0.0.1:9080".parse().unwrap()), ..Default::default() }
}

fn as_pairs<'a>(tags: &'a SpanTags<'_>) -> Vec<(&'a str, &'a str)> {
    tags.attributes.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect()
}

fn value<'a>(tags: &'a SpanTags<'_>, key: &str) -> Option<&'a str> {
    tags.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
}

#[test]
fn an_inbound_http_request_has_the_envoy_and_istio_tags() {
    let tags = default_tags();
    let mut head = request(
        Request::get("/productpage?u=normal")
            .header("host", "reviews:9080")
            .header("user-agent", "curl/8.5.0")
            .header("x-request-id", "8c6f3a5e-29c1-9b3f-a1d2-6f0e4a9c7b11")
            .header("x-forwarded-proto", "http"),
    );
    let info = read(&tags, &mut head, "inbound|9080||");
    let ok = response(200);
    let none = completion(None);
    let span = span_tags(&tags, Kind::Server, &info, Some(&ok), &none);
    assert_eq!(
        as_pairs(&span),
        vec![
            ("node_id", "sidecar~10.0.0.7~reviews-v1-abc.default~default.svc.cluster.local"),
            ("guid:x-request-id", "8c6f3a5e-29c1-9b3f-a1d2-6f0e4a9c7b11"),
            ("http.url", "http://reviews:9080/productpage?u=normal"),
            ("http.method", "GET"),
            ("http.protocol", "HTTP/1.1"),
            ("downstream_cluster", "-"),
            ("user_agent", "curl/8.5.0"),
            ("request_size", "12"),
            ("response_size", "3456"),
            ("peer.address", "10.0.0.9:43210"),
            ("upstream_address", "127.0.0.1:9080"),
            ("upstream_cluster", "inbound|9080||"),
            ("upstream_cluster.name", "inbound|9080||"),
            ("http.status_code", "200"),
            ("response_flags", "-"),
            ("component", "proxy"),
            ("istio.canonical_revision", "v1"),
            ("istio.canonical_service", "reviews"),
            ("istio.cluster_id", "Kubernetes"),
            ("istio.mesh_id", "cluster.local"),
            ("istio.namespace", "default"),
        ]
    );
    assert_eq!(span.status, SpanStatus::Unset);
}

#[test]
fn status_rules_follow_envoys_opentelemetry_tracer() {
    let tags = default_tags();
    let mut head = request(Request::get("/").header("host", "a"));
    let info = read(&tags, &mut head, "outbound|80||a");
    // (kind, status, expected span status, error tag)
    let cases = [
        (Kind::Server, Some(200), SpanStatus::Unset, false),
        (Kind::Client, Some(200), SpanStatus::Unset, false),
        (Kind::Server, Some(404), SpanStatus::Unset, false),
        (Kind::Client, Some(404), SpanStatus::Error, false),
        (Kind::Client, Some(499), SpanStatus::Error, false),
        (Kind::Server, Some(500), SpanStatus::Error, true),
        (Kind::Client, Some(503), SpanStatus::Error, true),
        // No response at all: `error=true`, `http.status_code=0`, status left UNSET.
        (Kind::Server, None, SpanStatus::Unset, true),
        (Kind::Client, None, SpanStatus::Unset, true),
    ];
    for (kind, code, expected, error) in cases {
        let response = code.map(response);
        let none = completion(None);
        let span = span_tags(&tags, kind, &info, response.as_ref(), &none);
        assert_eq!(span.status, expected, "{kind:?} {code:?}");
        assert_eq!(value(&span, "error") == Some("true"), error, "{kind:?} {code:?}");
        let code_text = code.unwrap_or(0).to_string();
        assert_eq!(value(&span, "http.status_code"), Some(code_text.as_str()));
    }
}

fn grpc_head() -> http::request::Parts {
    request(
        Request::post("http://ratings:50051/ratings.Ratings/Get")
            .version(Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("grpc-timeout", "1S"),
    )
}

#[test]
fn grpc_requests_get_grpc_tags_and_grpc_status_rules() {
    let tags = default_tags();
    let mut head = grpc_head();
    let info = read(&tags, &mut head, "outbound|50051||ratings.default.svc.cluster.local");
    // (grpc-status, server span status, client span status, error tag)
    let cases = [
        ("0", SpanStatus::Unset, SpanStatus::Unset, false),
        ("5", SpanStatus::Unset, SpanStatus::Error, false), // NotFound: the client's problem
        ("8", SpanStatus::Unset, SpanStatus::Error, true),  // ResourceExhausted
        ("14", SpanStatus::Error, SpanStatus::Error, true), // Unavailable
        ("13", SpanStatus::Error, SpanStatus::Error, true), // Internal
        ("abc", SpanStatus::Unset, SpanStatus::Unset, false),
    ];
    for (code, server, client, error) in cases {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(code));
        trailers.insert("grpc-message", HeaderValue::from_static("boom"));
        let done = completion(Some(&trailers));
        let ok = response(200);
        let s = span_tags(&tags, Kind::Server, &info, Some(&ok), &done);
        let ok = response(200);
        let c = span_tags(&tags, Kind::Client, &info, Some(&ok), &done);
        assert_eq!((s.status, c.status), (server, client), "grpc-status {code}");
        assert_eq!(value(&s, "error") == Some("true"), error, "grpc-status {code}");
        assert_eq!(value(&c, "grpc.status_code"), Some(code));
        assert_eq!(value(&c, "grpc.message"), Some("boom"));
    }
    let ok = response(200);
    let none = completion(None);
    let span = span_tags(&tags, Kind::Client, &info, Some(&ok), &none);
    assert_eq!(value(&span, "grpc.path"), Some("/ratings.Ratings/Get"));
    assert_eq!(value(&span, "grpc.authority"), Some("ratings:50051"));
    assert_eq!(value(&span, "grpc.content_type"), Some("application/grpc"));
    assert_eq!(value(&span, "grpc.timeout"), Some("1S"));
    assert_eq!(value(&span, "http.protocol"), Some("HTTP/2"));
    assert_eq!(value(&span, "http.url"), Some("http://ratings:50051/ratings.Ratings/Get"));
}

#[test]
fn a_trailers_only_grpc_response_is_read_from_the_headers() {
    let tags = default_tags();
    let mut head = grpc_head();
    let info = read(&tags, &mut head, "outbound|50051||ratings");
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from_static("12"));
    let received = Received::scan(&headers);
    let view = ResponseView {
        status: StatusCode::OK,
        version: Version::HTTP_2,
        headers: &mut headers,
        upstream: None,
        received,
    };
    let response = ResponseInfo::read(&view);
    let none = completion(None);
    let span = span_tags(&tags, Kind::Server, &info, Some(&response), &none);
    assert_eq!(value(&span, "grpc.status_code"), Some("12"));
    assert_eq!(span.status, SpanStatus::Error, "Unimplemented");
}

#[test]
fn http_url_uses_the_original_path_cut_at_the_max_length() {
    let tags = direction_tags(Vec::new(), true, 10);
    let mut head = request(
        Request::get("/rewritten")
            .header("host", "shop:8080")
            .header("x-envoy-original-path", "/checkout/cart/items?id=7")
            .header("x-forwarded-proto", "https"),
    );
    let info = read(&tags, &mut head, "inbound|8080||");
    let ok = response(200);
    let none = completion(None);
    let span = span_tags(&tags, Kind::Server, &info, Some(&ok), &none);
    assert_eq!(value(&span, "http.url"), Some("https://shop:8080/checkout/"));
    assert_eq!(truncate("/é/é", 2), "/", "cut at a character boundary");
}

#[test]
fn custom_tags_literal_environment_and_header_with_defaults() {
    let tag = |name: &str, value: TagValue| CustomTag { name: name.into(), value };
    let custom = vec![
        tag("cluster", TagValue::Environment { name: "CLUSTER".into(), default_value: None }),
        tag("env", TagValue::Literal("production".into())),
        tag(
            "region",
            TagValue::Environment { name: "REGION".into(), default_value: Some("eu".into()) },
        ),
        tag("nothing", TagValue::Environment { name: "UNSET".into(), default_value: None }),
        tag("user.id", TagValue::RequestHeader { name: "x-user-id".into(), default_value: None }),
        tag(
            "tenant",
            TagValue::RequestHeader { name: "x-tenant".into(), default_value: Some("none".into()) },
        ),
        tag("absent", TagValue::RequestHeader { name: "x-absent".into(), default_value: None }),
        tag("istio.namespace", TagValue::Literal("overridden".into())),
    ];
    let tags = direction_tags(custom, true, 256);
    let mut head =
        request(Request::get("/").header("x-user-id", "alice").header("x-user-id", "bob"));
    let info = read(&tags, &mut head, "inbound|80||");
    let ok = response(200);
    let none = completion(None);
    let span = span_tags(&tags, Kind::Server, &info, Some(&ok), &none);
    assert_eq!(value(&span, "cluster"), Some("east"));
    assert_eq!(value(&span, "env"), Some("production"));
    assert_eq!(value(&span, "region"), Some("eu"));
    assert_eq!(value(&span, "nothing"), None, "unset without default: no tag");
    assert_eq!(value(&span, "user.id"), Some("alice"), "the first value");
    assert_eq!(value(&span, "tenant"), Some("none"));
    assert_eq!(value(&span, "absent"), None);
    assert_eq!(value(&span, "istio.namespace"), Some("overridden"));
    assert_eq!(span.attributes.iter().filter(|(k, _)| k == "istio.namespace").count(), 1);
}

#[test]
fn istio_tags_can_be_switched_off_and_stitched_spans_say_so() {
    let tags = direction_tags(Vec::new(), false, 256);
    let mut head = request(
        Request::get("/")
            .header("x-client-trace-id", "client-1")
            .header("x-envoy-downstream-service-cluster", "productpage.default"),
    );
    let mut info = read(&tags, &mut head, "outbound|9080||reviews");
    info.stitched = true;
    let ok = response(200);
    let none = completion(None);
    let span = span_tags(&tags, Kind::Client, &info, Some(&ok), &none);
    assert!(span.attributes.iter().all(|(k, _)| !k.starts_with("istio.")));
    assert_eq!(value(&span, "meshtrace.stitched"), Some("true"));
    assert_eq!(value(&span, "guid:x-client-trace-id"), Some("client-1"));
    assert_eq!(value(&span, "downstream_cluster"), Some("productpage.default"));
    assert_eq!(value(&span, "user_agent"), Some("-"));
    assert_eq!(value(&span, "guid:x-request-id"), None, "no id on the request");
}

#[test]
fn custom_tags_replace_standard_ones_and_earlier_ones_once() {
    let tag = |name: &str, value: TagValue| CustomTag { name: name.into(), value };
    let header = |name: &str| TagValue::RequestHeader { name: name.into(), default_value: None };
    // Without any custom tag that shares a name, tags are only appended.
    assert!(!default_tags().replaces);
    let custom = vec![
        tag("component", TagValue::Literal("gateway".into())),
        tag("istio.mesh_id", header("x-mesh")),
        tag("team", header("x-team")),
        tag("team", header("x-owner")),
    ];
    let tags = direction_tags(custom, true, 256);
    assert!(tags.replaces);
    let mut head = request(Request::get("/").header("x-mesh", "blue").header("x-owner", "ops"));
    let info = read(&tags, &mut head, "inbound|80||");
    let ok = response(200);
    let none = completion(None);
    let span = span_tags(&tags, Kind::Server, &info, Some(&ok), &none);
    let count = |key: &str| span.attributes.iter().filter(|(k, _)| k == key).count();
    assert_eq!((value(&span, "component"), count("component")), (Some("gateway"), 1));
    assert_eq!((value(&span, "istio.mesh_id"), count("istio.mesh_id")), (Some("blue"), 1));
    assert_eq!((value(&span, "team"), count("team")), (Some("ops"), 1));
}

#[test]
fn grpc_web_is_not_grpc_to_the_tracer_as_to_envoy() {
    let tags = default_tags();
    for content_type in ["application/grpc-web", "application/grpc-web+proto"] {
        let mut head = grpc_head();
        head.headers.insert("content-type", HeaderValue::from_static(content_type));
        let info = read(&tags, &mut head, "outbound|50051||ratings.default.svc.cluster.local");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("14"));
        let done = completion(Some(&trailers));
        let ok = response(200);
        let span = span_tags(&tags, Kind::Client, &info, Some(&ok), &done);
        assert_eq!(value(&span, "grpc.path"), None, "{content_type}");
        assert_eq!(value(&span, "grpc.status_code"), None, "{content_type}");
        // Judged by HTTP status alone, as an HTTP request.
        assert_eq!(span.status, SpanStatus::Unset, "{content_type}");
        assert_eq!(value(&span, "error"), None, "{content_type}");
    }
    let mut head = grpc_head();
    head.headers.insert("content-type", HeaderValue::from_static("application/grpc+proto"));
    let info = read(&tags, &mut head, "outbound|50051||ratings.default.svc.cluster.local");
    let (ok, none) = (response(200), completion(None));
    let span = span_tags(&tags, Kind::Client, &info, Some(&ok), &none);
    assert_eq!(value(&span, "grpc.content_type"), Some("application/grpc+proto"));
}

/// The one tag a writer puts into a list.
fn written(write: impl FnOnce(&mut TagList<'static>)) -> String {
    let mut list = TagList { attributes: Vec::new(), replaces: false };
    write(&mut list);
    assert_eq!(list.attributes.len(), 1);
    list.attributes.remove(0).1.into_owned()
}

#[test]
fn numbers_and_addresses_read_as_their_display() {
    for number in [0, 7, 10, 200, 65_535, u64::MAX] {
        assert_eq!(written(|list| decimal(list, "n", number)), number.to_string());
    }
    let addresses = [
        "0.0.0.0:0",
        "10.1.2.3:9080",
        "127.0.0.1:15006",
        "255.255.255.255:65535",
        "[::1]:8080",
        "[fe80::1%2]:443",
        "[2001:db8::ff00:42:8329]:15001",
    ];
    for text in addresses {
        let parsed: SocketAddr = text.parse().unwrap();
        assert_eq!(written(|list| address(list, "a", parsed)), parsed.to_string(), "{text}");
    }
}

/// A span's tags as the tracer writes them, straight into attribute fields: the same fields as
/// the list [`span_tags`] makes, and the same status.
#[test]
fn tags_written_as_they_come_are_the_listed_ones() {
    let tag = |name: &str, value: TagValue| CustomTag { name: name.into(), value };
    let custom = vec![
        tag("literal", TagValue::Literal("v".into())),
        tag("from.env", TagValue::Environment { name: "CLUSTER".into(), default_value: None }),
        tag(
            "from.header",
            TagValue::RequestHeader { name: "x-team".into(), default_value: Some("-".into()) },
        ),
    ];
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("14"));
    trailers.insert("grpc-message", HeaderValue::from_static("unavailable"));
    let done = completion(Some(&trailers));
    let none = completion(None);
    let mut with_team = request(Request::get("/x").header("x-team", "checkout"));
    with_team.headers.insert("user-agent", HeaderValue::from_static("curl/8"));
    for tags in [default_tags(), direction_tags(custom, true, 4)] {
        assert!(!tags.replaces());
        let cases = [
            (read(&tags, &mut grpc_head(), "outbound|50051||ratings"), Kind::Client, &done),
            (read(&tags, &mut with_team.clone(), "inbound|80||"), Kind::Server, &none),
        ];
        for (info, kind, completion) in &cases {
            for response in [None, Some(response(200)), Some(response(503))] {
                let listed = span_tags(&tags, *kind, info, response.as_ref(), completion);
                let mut expected = Vec::new();
                let mut sink = AttributeFields(&mut expected);
                for (key, value) in listed.attributes.clone() {
                    sink.tag(&key, value);
                }
                let mut fields = Vec::new();
                let status = write_tags(
                    &tags,
                    *kind,
                    info,
                    response.as_ref(),
                    completion,
                    &mut AttributeFields(&mut fields),
                );
                assert_eq!(fields, expected, "{:?}", as_pairs(&listed));
                assert_eq!(status, listed.status);
            }
        }
    }
}

/// Only the names in `STANDARD_KEYS` are checked for replacement: every tag written before
/// the custom ones must be there.
#[test]
fn every_standard_tag_is_listed_as_one() {
    let config = config();
    let mut local = LocalInfo::new(&config, &env());
    local.zone = Some("us-east1-b".into());
    let mut settings = DirectionSettings::off();
    settings.enable_istio_tags = false;
    settings.max_path_tag_length = 256;
    let tags = DirectionTags::new(&settings, &config.workload, &local, &env());
    let mut head = grpc_head();
    for (name, value) in [
        ("x-request-id", "r1"),
        ("x-client-trace-id", "c1"),
        ("x-envoy-downstream-service-cluster", "productpage"),
        ("grpc-timeout", "1S"),
        ("user-agent", "grpc-go"),
    ] {
        head.headers.insert(name, HeaderValue::from_static(value));
    }
    let mut info = read(&tags, &mut head, "outbound|50051||ratings");
    info.stitched = true;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("13"));
    trailers.insert("grpc-message", HeaderValue::from_static("internal"));
    let done = completion(Some(&trailers));
    let unavailable = response(503);
    let span = span_tags(&tags, Kind::Client, &info, Some(&unavailable), &done);
    let mut keys: Vec<&str> = span.attributes.iter().map(|(key, _)| key.as_ref()).collect();
    keys.sort_unstable();
    let mut standard = STANDARD_KEYS.to_vec();
    standard.sort_unstable();
    assert_eq!(keys, standard, "every standard tag once, and only those");
}

#[test]
fn header_values_that_are_not_utf8_become_text_with_replacement_characters() {
    let tags = default_tags();
    let mut head = request(Request::get("/").header("host", "reviews:9080"));
    let latin1 = HeaderValue::from_bytes(b"caf\xe9-agent").unwrap();
    head.headers.insert("user-agent", latin1);
    head.headers.insert("x-envoy-downstream-service-cluster", HeaderValue::from_static("web"));
    let info = read(&tags, &mut head, "inbound|9080||");
    let (ok, none) = (response(200), completion(None));
    let span = span_tags(&tags, Kind::Server, &info, Some(&ok), &none);
    assert_eq!(value(&span, "user_agent"), Some("caf\u{fffd}-agent"));
    assert_eq!(value(&span, "downstream_cluster"), Some("web"));
}
