//! One sidecar's exposition: exact sample lines for HTTP, gRPC and TCP series.

use super::*;

#[test]
fn outbound_request_exposes_istio_names_labels_and_buckets() {
    let (observer, metrics) = sidecar(PRODUCTPAGE);
    Call::outbound("reviews.default.svc.cluster.local:9080").run(&*observer);
    let text = metrics.encode();
    let labels = format!(
        "{OUTBOUND_TO_REVIEWS},request_protocol=\"http\",response_code=\"200\",\
         grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"unknown\""
    );
    let duration = "istio_request_duration_milliseconds";
    let mut expected = vec![
        "# HELP istio_requests Requests handled by the sidecar.".to_owned(),
        "# TYPE istio_requests counter".to_owned(),
        format!("istio_requests_total{{{labels}}} 1"),
        format!("# TYPE {duration} histogram"),
        // 7.4 ms is recorded as 7 (whole milliseconds), in the 10 ms bucket.
        format!("{duration}_sum{{{labels}}} 7.0"),
        format!("{duration}_count{{{labels}}} 1"),
        format!("{duration}_bucket{{le=\"0.5\",{labels}}} 0"),
        format!("{duration}_bucket{{le=\"5.0\",{labels}}} 0"),
        format!("{duration}_bucket{{le=\"10.0\",{labels}}} 1"),
        format!("{duration}_bucket{{le=\"3600000.0\",{labels}}} 1"),
        format!("{duration}_bucket{{le=\"+Inf\",{labels}}} 1"),
        // No request body: the head alone, `GET http://reviews…:9080/reviews/0 HTTP/1.1` and
        // the line ends, 72 bytes on the wire, as istio-proxy meters it.
        format!("istio_request_bytes_bucket{{le=\"50.0\",{labels}}} 0"),
        format!("istio_request_bytes_bucket{{le=\"100.0\",{labels}}} 1"),
        format!("istio_request_bytes_sum{{{labels}}} 72.0"),
        // `HTTP/1.1 200 OK` and the blank line, 19 bytes, then the 295-byte body.
        format!("istio_response_bytes_bucket{{le=\"250.0\",{labels}}} 0"),
        format!("istio_response_bytes_bucket{{le=\"500.0\",{labels}}} 1"),
        format!("istio_response_bytes_sum{{{labels}}} 314.0"),
    ];
    let buckets = text.lines().filter(|l| l.starts_with(&format!("{duration}_bucket"))).count();
    assert_eq!(buckets, 20, "19 finite buckets and +Inf");
    expected.push("# EOF".to_owned());
    assert_lines(&text, &expected);
    assert_eq!(text.lines().last(), Some("# EOF"));
    assert_exposition_is_well_formed(&text);
}

#[test]
fn repeated_requests_add_up_in_one_series() {
    let (observer, metrics) = sidecar(PRODUCTPAGE);
    for _ in 0..3 {
        Call::outbound("reviews.default.svc.cluster.local:9080").run(&*observer);
    }
    let text = metrics.encode();
    let labels = format!(
        "{OUTBOUND_TO_REVIEWS},request_protocol=\"http\",response_code=\"200\",\
         grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"unknown\""
    );
    let expected = [
        format!("istio_requests_total{{{labels}}} 3"),
        format!("istio_request_duration_milliseconds_count{{{labels}}} 3"),
        format!("istio_request_duration_milliseconds_sum{{{labels}}} 21.0"),
        format!("istio_request_bytes_count{{{labels}}} 3"),
        format!("istio_response_bytes_sum{{{labels}}} 942.0"),
    ];
    assert_lines(&text, &expected);
    assert_eq!(text.matches("istio_requests_total{").count(), 1, "{text}");
}

#[test]
fn proxy_error_response_carries_code_and_flags() {
    let (observer, metrics) = sidecar(PRODUCTPAGE);
    let mut call = Call::outbound("reviews:9080");
    call.status = Some(503);
    call.flags = "UF";
    call.run(&*observer);
    let mut no_response = Call::outbound("reviews:9080");
    no_response.status = None;
    no_response.flags = "DC";
    no_response.run(&*observer);
    let tail =
        "grpc_response_status=\"\",response_flags=\"UF\",connection_security_policy=\"unknown\"";
    let other =
        "grpc_response_status=\"\",response_flags=\"DC\",connection_security_policy=\"unknown\"";
    assert_lines(
        &metrics.encode(),
        &[
            format!(
                "istio_requests_total{{{OUTBOUND_TO_REVIEWS},request_protocol=\"http\",response_code=\"503\",{tail}}} 1"
            ),
            format!(
                "istio_requests_total{{{OUTBOUND_TO_REVIEWS},request_protocol=\"http\",response_code=\"0\",{other}}} 1"
            ),
        ],
    );
}

#[test]
fn grpc_status_comes_from_trailers_headers_or_http_status() {
    let (observer, metrics) = sidecar(PRODUCTPAGE);
    let grpc = |status: u16| {
        let mut call =
            Call::outbound("reviews:9080").header("content-type", "application/grpc+proto");
        call.status = Some(status);
        call
    };
    let mut trailers = grpc(200);
    trailers.trailers = Some(grpc_headers("14"));
    trailers.run(&*observer);
    let mut trailers_only = grpc(200);
    trailers_only.response_headers = grpc_headers("5");
    trailers_only.run(&*observer);
    grpc(503).run(&*observer);
    let mut invalid = grpc(200);
    invalid.trailers = Some(grpc_headers("99"));
    invalid.run(&*observer);
    let mut reset = grpc(200);
    reset.status = None;
    reset.run(&*observer);

    let text = metrics.encode();
    let line = |code: &str, status: &str| {
        format!(
            "istio_requests_total{{{OUTBOUND_TO_REVIEWS},request_protocol=\"grpc\",response_code=\"{code}\",\
             grpc_response_status=\"{status}\",response_flags=\"-\",connection_security_policy=\"unknown\"}} 1"
        )
    };
    assert_lines(
        &text,
        &[line("200", "14"), line("200", "5"), line("503", "14"), line("200", "-1"), line("0", "")],
    );
}

#[test]
fn tcp_counters_follow_tunnels() {
    let (observer, metrics) = sidecar(PRODUCTPAGE);
    let tunnel = |cluster, authority| Tunnel {
        direction: Direction::Outbound,
        upstream: "127.0.0.1:19080".parse().unwrap(),
        upstream_cluster: cluster,
        authority,
    };
    let reviews = tunnel("outbound|9080||reviews.default.svc.cluster.local", "reviews:9080");
    let external = tunnel("PassthroughCluster", "api.example.com:443");
    observer.tunnel_opened(&reviews);
    observer.tunnel_opened(&reviews);
    // Reported while open, then at the close: the counters add the reports up.
    observer.tunnel_bytes(&reviews, 1000, 200);
    observer.tunnel_bytes(&reviews, 200, 100);
    observer.tunnel_closed(&reviews);
    observer.tunnel_opened(&external);
    observer.tunnel_bytes(&external, 10, 20);
    observer.tunnel_closed(&external);

    let text = metrics.encode();
    let reviews = format!(
        "{OUTBOUND_TO_REVIEWS},request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"unknown\""
    );
    assert_lines(
        &text,
        &[
            format!("istio_tcp_connections_opened_total{{{reviews}}} 2"),
            format!("istio_tcp_connections_closed_total{{{reviews}}} 1"),
            format!("istio_tcp_sent_bytes_total{{{reviews}}} 1200"),
            format!("istio_tcp_received_bytes_total{{{reviews}}} 300"),
        ],
    );
    // Labelled as an HTTP exchange to the same place is: Istio's passthrough for a host the
    // services table does not know, whatever address it reached.
    let sent = series(&text, "istio_tcp_sent_bytes_total");
    let external =
        sent.iter().find(|s| s["destination_service_name"] == "PassthroughCluster").unwrap();
    assert_eq!(
        (
            external["reporter"].as_str(),
            external["destination_service"].as_str(),
            external["destination_workload"].as_str()
        ),
        ("source", "api.example.com:443", "unknown")
    );
    assert_eq!(sent.len(), 2, "{text}");
    assert_exposition_is_well_formed(&text);
}
