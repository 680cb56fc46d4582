"""The collector's `zipkin` exporter: spans made by the OpenTelemetry Python SDK, sent over
OTLP/gRPC, arrive at a Zipkin-style `POST /api/v2/spans` endpoint as Zipkin v2 JSON, translated
as the OpenTelemetry Collector's Zipkin exporter translates them."""

import json

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from e2e_util import PostSink, eventually
from sdk_spans import make_provider, produce_spans

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  zipkin:
    endpoint: http://${env:ZIPKIN_ENDPOINT}/api/v2/spans
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [zipkin]
"""


@pytest.fixture
def zipkin():
    """Takes `POST /api/v2/spans` and answers 202, as a Zipkin server does."""
    sink = PostSink(status=202)
    yield sink
    sink.close()


def zipkin_spans(sink):
    return [span for _, body in sink.received("/api/v2/spans") for span in json.loads(body)]


def micros(nanos):
    return (nanos + 500) // 1000


def test_sdk_spans_arrive_as_zipkin_v2_json(zipkin, pool):
    collector = pool.collector(CONFIG, env={"ZIPKIN_ENDPOINT": zipkin.endpoint})
    exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc_endpoint}", insecure=True)
    provider, _memory = make_provider(exporter, "productpage")
    linked, parent, child = produce_spans(provider)
    provider.shutdown()

    spans = eventually(lambda: found if len(found := zipkin_spans(zipkin)) >= 3 else None)
    headers, _ = zipkin.received("/api/v2/spans")[0]
    assert headers["content-type"] == "application/json"
    by_id = {span["id"]: span for span in spans}
    assert len(by_id) == 3

    def context(span):
        return span.get_span_context()

    for sdk_span in (linked, parent, child):
        zipkin_span = by_id[f"{context(sdk_span).span_id:016x}"]
        assert zipkin_span["traceId"] == f"{context(sdk_span).trace_id:032x}"
        assert zipkin_span["name"] == sdk_span.name
        assert zipkin_span["timestamp"] == micros(sdk_span.start_time)
        length = sdk_span.end_time - sdk_span.start_time
        assert zipkin_span["duration"] == (micros(length) if length >= 1000 else 1)
        assert zipkin_span["localEndpoint"] == {"serviceName": "productpage"}
        tags = zipkin_span["tags"]
        assert tags["otel.library.name"] == "e2e.seed"
        assert tags["otel.library.version"] == "1.2.3"
        # Resource attributes ride on every span, as strings.
        assert tags["service.namespace"] == "mesh"
        assert tags["k8s.pod.replicas"] == "3"
        assert tags["mesh.zones"] == '["eu-1a","eu-1b"]'
        assert "service.name" not in tags

    root = by_id[f"{context(linked).span_id:016x}"]
    assert "kind" not in root and root["tags"]["span.kind"] == "internal"
    assert "parentId" not in root

    server = by_id[f"{context(parent).span_id:016x}"]
    assert server["kind"] == "SERVER"
    assert server["tags"]["http.request.method"] == "GET"
    assert server["tags"]["http.response.status_code"] == "200"
    assert server["tags"]["mesh.latency_ratio"] == "0.75"
    assert server["tags"]["mesh.retried"] == "false"
    assert server["tags"]["mesh.hops"] == '["ingress","productpage","reviews"]'
    assert server["tags"]["mesh.weights"] == "[0.5,1.5]"
    assert server["tags"]["mesh.flags"] == "[true,false]"
    assert "error" not in server["tags"]
    events = {annotation["value"] for annotation in server["annotations"]}
    assert "no-attributes" in events
    assert 'cache.miss|{"attempt":2,"backoff":0.1,"cache.key":"user:42","warm":true}|0' in events

    client = by_id[f"{context(child).span_id:016x}"]
    assert client["kind"] == "CLIENT"
    assert client["parentId"] == server["id"]
    assert client["remoteEndpoint"] == {"serviceName": "reviews"}
    assert "peer.service" not in client["tags"]
    assert client["tags"]["error"] == "true"
    assert client["tags"]["otel.status_code"] == "STATUS_CODE_ERROR"
    assert client["tags"]["otel.status_description"] == "upstream reset"
    link = client["tags"]["otlp.link.0"].split("|")
    assert link[:2] == [root["traceId"], root["id"]]
    assert json.loads(link[3]) == {"link.reason": "triggered-by", "link.weight": 7}

    assert collector.metric("otelcol_exporter_sent_spans_total", exporter="zipkin") == 3
