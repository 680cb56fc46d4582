//! Two sidecars talking: the peer metadata exchange, the label caches' bound and the
//! seed's PromQL selectors.

use super::*;
use crate::metrics::observer::ENTRIES_PER_DIRECTION;

#[test]
fn inbound_reads_and_removes_peer_metadata() {
    let (observer, metrics) = sidecar(REVIEWS);
    let caller = peer_metadata::WorkloadIdentity {
        workload: "productpage-v1".into(),
        namespace: "default".into(),
        canonical_service: "productpage".into(),
        canonical_revision: "v1".into(),
        app: "productpage".into(),
        version: "v1".into(),
        cluster: "Kubernetes".into(),
    };
    let forwarded = Call::inbound("reviews:9080")
        .header("x-envoy-peer-metadata", &peer_metadata::encode(&caller))
        .header(
            "x-envoy-peer-metadata-id",
            "sidecar~10.0.0.9~productpage-v1.default~default.svc.cluster.local",
        )
        .run(&*observer);
    assert!(forwarded.headers.get(PEER_METADATA).is_none());
    assert!(forwarded.headers.get(PEER_METADATA_ID).is_none());
    // No metadata: the caller is unknown.
    Call::inbound("10.0.0.1:9080").run(&*observer);

    let text = metrics.encode();
    let known = "reporter=\"destination\",source_workload=\"productpage-v1\",\
source_canonical_service=\"productpage\",source_canonical_revision=\"v1\",\
source_workload_namespace=\"default\",source_principal=\"unknown\",source_app=\"productpage\",\
source_version=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"reviews-v2\",\
destination_workload_namespace=\"default\",destination_principal=\"unknown\",\
destination_app=\"reviews\",destination_version=\"v2\",\
destination_service=\"reviews.default.svc.cluster.local\",destination_canonical_service=\"reviews\",\
destination_canonical_revision=\"v2\",destination_service_name=\"reviews\",\
destination_service_namespace=\"default\",destination_cluster=\"Kubernetes\",\
request_protocol=\"http\",response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\",\
connection_security_policy=\"none\"";
    let anonymous = "reporter=\"destination\",source_workload=\"unknown\",\
source_canonical_service=\"unknown\",source_canonical_revision=\"latest\",\
source_workload_namespace=\"unknown\",source_principal=\"unknown\",source_app=\"unknown\",\
source_version=\"unknown\",source_cluster=\"unknown\",destination_workload=\"reviews-v2\",\
destination_workload_namespace=\"default\",destination_principal=\"unknown\",\
destination_app=\"reviews\",destination_version=\"v2\",destination_service=\"reviews\",\
destination_canonical_service=\"reviews\",destination_canonical_revision=\"v2\",\
destination_service_name=\"reviews\",destination_service_namespace=\"default\",\
destination_cluster=\"Kubernetes\",request_protocol=\"http\",response_code=\"200\",\
grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"none\"";
    assert_lines(
        &text,
        &[
            format!("istio_requests_total{{{known}}} 1"),
            format!("istio_requests_total{{{anonymous}}} 1"),
        ],
    );
}

#[test]
fn inbound_answers_mesh_callers_with_its_own_metadata() {
    let (observer, _metrics) = sidecar(REVIEWS);
    let caller = peer_metadata::encode(&peer_metadata::WorkloadIdentity {
        workload: "productpage-v1".into(),
        ..peer_metadata::WorkloadIdentity::default()
    });
    let id = "sidecar~10.0.0.9~productpage-v1.default~default.svc.cluster.local";
    let (_, answer) = Call::inbound("reviews:9080")
        .header("x-envoy-peer-metadata", &caller)
        .header("x-envoy-peer-metadata-id", id)
        .exchange(&*observer);
    let reviews = peer_metadata::decode(answer[PEER_METADATA].as_bytes()).unwrap();
    assert_eq!(
        (reviews.workload.as_str(), reviews.app.as_str(), reviews.version.as_str()),
        ("reviews-v2", "reviews", "v2")
    );
    assert_eq!(
        answer[PEER_METADATA_ID],
        "sidecar~0.0.0.0~reviews-v2.default~default.svc.cluster.local"
    );

    // Each header only to a caller that sent it: callers outside the mesh learn nothing.
    let (_, answer) = Call::inbound("reviews:9080").exchange(&*observer);
    assert!(answer.is_empty(), "{answer:?}");
    let (_, answer) =
        Call::inbound("reviews:9080").header("x-envoy-peer-metadata-id", id).exchange(&*observer);
    assert!(answer.contains_key(PEER_METADATA_ID) && !answer.contains_key(PEER_METADATA));
}

#[test]
fn the_cluster_labels_and_the_metadata_name_the_configured_cluster() {
    let operator = "---\napiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  values: {global: {multiCluster: {clusterName: east}}}\n";
    let (observer, metrics) = sidecar(&format!("{REVIEWS}{operator}"));
    let (_, answer) = Call::inbound("reviews:9080")
        .header("x-envoy-peer-metadata-id", "sidecar~10.0.0.9~p.default~default.svc.cluster.local")
        .header(
            "x-envoy-peer-metadata",
            &peer_metadata::encode(&peer_metadata::WorkloadIdentity::default()),
        )
        .exchange(&*observer);
    let reviews = peer_metadata::decode(answer[PEER_METADATA].as_bytes()).unwrap();
    assert_eq!(reviews.cluster, "east", "what callers label destination_cluster with");
    assert!(metrics.encode().contains("destination_cluster=\"east\""));
    // istio-proxy's ISTIO_META_CLUSTER_ID wins over the config.
    let (observer, metrics) =
        sidecar_with(&format!("{REVIEWS}{operator}"), &[("ISTIO_META_CLUSTER_ID", "west")]);
    Call::inbound("reviews:9080").run(&*observer);
    let text = metrics.encode();
    assert!(text.contains("destination_cluster=\"west\"") && !text.contains("east"), "{text}");
}

#[test]
fn inbound_exchanges_name_the_configured_service() {
    let httpbin = "kind: Sidecar\nmetadata: {name: httpbin-v1, namespace: web, labels: {app: httpbin}}\nspec:\n  inbound: {app: 127.0.0.1:80, service: httpbin:8000}\n";
    let (observer, metrics) = sidecar(httpbin);
    // Whatever the caller wrote as the authority: an IP, or another name.
    Call::inbound("10.0.0.5:80").run(&*observer);
    Call::inbound("api.example.com").run(&*observer);
    let text = metrics.encode();
    let requests = series(&text, "istio_requests_total");
    assert_eq!(requests.len(), 1, "{text}");
    assert_eq!(requests[0]["destination_service"], "httpbin.web.svc.cluster.local");
    assert_eq!(requests[0]["destination_service_name"], "httpbin");
    assert_eq!(requests[0]["destination_service_namespace"], "web");
}

/// productpage's sidecar (outbound) → reviews' sidecar (inbound) and the response back: the
/// client side learns the server's workload from the response and no app sees the headers.
#[test]
fn two_sidecars_fill_the_client_side_destination_labels() {
    let (productpage, productpage_metrics) = sidecar(PRODUCTPAGE);
    let (reviews, reviews_metrics) = sidecar(REVIEWS);
    let request = Request::get("/reviews/0").header("host", "reviews:9080").body(());
    let mut outbound_head = request.unwrap().into_parts().0;
    let mut outbound = observe_request(
        &*productpage,
        Direction::Outbound,
        &mut outbound_head,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    let mut inbound_head = Request::get("/reviews/0").body(()).unwrap().into_parts().0;
    inbound_head.headers = outbound_head.headers.clone();
    let mut inbound =
        observe_request(&*reviews, Direction::Inbound, &mut inbound_head, "inbound|9080||");
    assert!(!inbound_head.headers.contains_key(PEER_METADATA), "reviews' app sees nothing");

    let mut response = HeaderMap::new();
    response.insert("content-type", HeaderValue::from_static("application/json"));
    respond(&mut *inbound, 200, &mut response);
    completed(inbound);
    assert!(response.contains_key(PEER_METADATA) && response.contains_key(PEER_METADATA_ID));
    respond(&mut *outbound, 200, &mut response);
    completed(outbound);
    assert!(!response.contains_key(PEER_METADATA), "productpage's app sees nothing");
    assert!(!response.contains_key(PEER_METADATA_ID));
    assert_eq!(response["content-type"], "application/json");

    let client_side = series(&productpage_metrics.encode(), "istio_requests_total");
    assert_eq!(client_side.len(), 1);
    for (label, value) in [
        ("reporter", "source"),
        ("destination_workload", "reviews-v2"),
        ("destination_workload_namespace", "default"),
        ("destination_app", "reviews"),
        ("destination_version", "v2"),
        ("destination_canonical_service", "reviews"),
        ("destination_canonical_revision", "v2"),
        ("destination_cluster", "Kubernetes"),
        ("destination_service", "reviews.default.svc.cluster.local"),
    ] {
        assert_eq!(client_side[0][label], value, "{label}");
    }
    let server_side = series(&reviews_metrics.encode(), "istio_requests_total");
    assert_eq!(server_side.len(), 1);
    assert_eq!(server_side[0]["source_workload"], "productpage-v1");
    assert_eq!(server_side[0]["source_app"], "productpage");
}

#[test]
fn outbound_sends_metadata_to_mesh_services_and_reads_the_reply() {
    let (observer, metrics) = sidecar(PRODUCTPAGE);
    let reviews = peer_metadata::WorkloadIdentity {
        workload: "reviews-v2".into(),
        namespace: "default".into(),
        canonical_service: "reviews".into(),
        canonical_revision: "v2".into(),
        app: "reviews".into(),
        version: "v2".into(),
        cluster: "Kubernetes".into(),
    };
    let mut call = Call::outbound("reviews.default.svc.cluster.local:9080");
    call.response_headers.insert(PEER_METADATA, peer_metadata::encode(&reviews).parse().unwrap());
    call.response_headers.insert(PEER_METADATA_ID, HeaderValue::from_static("sidecar~x"));
    let (forwarded, answer) = call.exchange(&*observer);
    assert!(answer.is_empty(), "removed before the app sees them: {answer:?}");
    let sent = forwarded.headers.get(PEER_METADATA).unwrap().as_bytes();
    let productpage = peer_metadata::decode(sent).unwrap();
    assert_eq!(
        (productpage.workload.as_str(), productpage.app.as_str()),
        ("productpage-v1", "productpage")
    );
    assert_eq!(
        forwarded.headers.get(PEER_METADATA_ID).unwrap(),
        "sidecar~0.0.0.0~productpage-v1.default~default.svc.cluster.local"
    );
    let external = Call::new(
        Direction::Outbound,
        Request::get("https://api.example.com/").body(()).unwrap(),
        "PassthroughCluster",
    )
    .run(&*observer);
    assert!(external.headers.get(PEER_METADATA).is_none());

    let text = metrics.encode();
    let samples = series(&text, "istio_requests_total");
    let to_reviews = samples.iter().find(|s| s["destination_workload"] == "reviews-v2").unwrap();
    assert_eq!(to_reviews["destination_canonical_revision"], "v2");
    assert_eq!(to_reviews["destination_app"], "reviews");
    assert_eq!(to_reviews["destination_cluster"], "Kubernetes");
    let passthrough =
        samples.iter().find(|s| s["destination_service_name"] == "PassthroughCluster");
    assert_eq!(passthrough.unwrap()["destination_service"], "api.example.com");
}

#[test]
fn metadata_that_does_not_decode_is_anonymous_and_does_not_spend_the_bound() {
    let (observer, metrics) = sidecar(REVIEWS);
    let too_long = "A".repeat(8 * 1024 + 1);
    for i in 0..ENTRIES_PER_DIRECTION + 10 {
        Call::inbound("reviews:9080")
            .header("x-envoy-peer-metadata", &format!("not base64 {i}"))
            .run(&*observer);
        Call::inbound("reviews:9080")
            .header("x-envoy-peer-metadata", &format!("{too_long}{i}"))
            .run(&*observer);
    }
    let caller = peer_metadata::WorkloadIdentity {
        workload: "productpage-v1".into(),
        namespace: "default".into(),
        ..Default::default()
    };
    Call::inbound("reviews:9080")
        .header("x-envoy-peer-metadata", &peer_metadata::encode(&caller))
        .run(&*observer);
    let requests = series(&metrics.encode(), "istio_requests_total");
    let count =
        |workload: &str| requests.iter().filter(|s| s["source_workload"] == workload).count();
    assert_eq!(count("unknown"), 1, "every value that does not decode is the anonymous caller");
    assert_eq!(count("productpage-v1"), 1, "a real caller after them is still told apart");
}

#[test]
fn authorities_past_the_bound_share_one_series() {
    let (observer, metrics) = sidecar(REVIEWS);
    for i in 0..ENTRIES_PER_DIRECTION + 100 {
        Call::inbound(&format!("svc{i}:9080")).run(&*observer);
    }
    let requests = series(&metrics.encode(), "istio_requests_total");
    // One entry for the inbound cluster, one per authority until the budget is spent, then
    // one series for the rest.
    assert_eq!(requests.len(), ENTRIES_PER_DIRECTION - 1 + 1);
    let overflow = requests.iter().find(|s| s["destination_service"] == "reviews").unwrap();
    assert_eq!(overflow["destination_service_name"], "reviews");
}

/// The seed's dashboard queries select on `reporter`, `destination_service` and
/// `response_code` and group by `le` and `destination_service`: a two-sidecar exchange gives
/// them series to match on both reporters.
#[test]
fn seed_promql_selectors_match_series() {
    let (productpage, productpage_metrics) = sidecar(PRODUCTPAGE);
    let (reviews, reviews_metrics) = sidecar(REVIEWS);
    for status in [200, 503] {
        // productpage → its sidecar (outbound) → reviews' sidecar (inbound), with the headers
        // the outbound side added.
        let mut outbound = Call::outbound("reviews:9080");
        outbound.status = Some(status);
        let forwarded = outbound.run(&*productpage);
        let mut inbound = Call::inbound("reviews:9080");
        inbound.request.headers_mut().extend(forwarded.headers);
        inbound.status = Some(status);
        inbound.run(&*reviews);
    }
    let service = "reviews.default.svc.cluster.local";
    for (text, reporter) in
        [(reviews_metrics.encode(), "destination"), (productpage_metrics.encode(), "source")]
    {
        let requests = series(&text, "istio_requests_total");
        let matching = |code: &str| {
            requests
                .iter()
                .filter(|s| {
                    s["reporter"] == reporter && s["destination_service"].starts_with("reviews")
                })
                .filter(|s| s["response_code"].starts_with(code))
                .count()
        };
        assert_eq!((matching(""), matching("5")), (2, 1), "{reporter}");
        let buckets = series(&text, "istio_request_duration_milliseconds_bucket");
        assert!(
            buckets.iter().all(|s| s["destination_service"] == service && s.contains_key("le"))
        );
        assert_eq!(buckets.len(), 2 * 20);
    }
    let server_side = series(&reviews_metrics.encode(), "istio_requests_total");
    assert!(server_side.iter().all(|s| s["source_workload"] == "productpage-v1"));
}
