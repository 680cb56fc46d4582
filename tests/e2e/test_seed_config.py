"""Acceptance test: the seed's Istio → OpenTelemetry Collector config, run unchanged.

The seed config (tests/e2e/seed/otel-collector-config.yaml, verbatim) only gets its two
placeholders filled: `<gRPC-Endpoint>` becomes a real OTLP/gRPC sink on 127.0.0.1 and
`<gRPC-Token>` a token. A second `--config` overlay moves the listeners off their fixed ports.
Spans are produced by the OpenTelemetry Python SDK, exactly as an instrumented service would.
"""

import json
import uuid
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)

from e2e_util import JSON, eventually, free_port, http_session, log_request_json, post
from sdk_spans import make_provider, produce_spans

SEED = Path(__file__).parent / "seed" / "otel-collector-config.yaml"
TOKEN = "e2e-token-" + uuid.uuid4().hex


def overlay(health_port):
    """Listeners on 127.0.0.1: ephemeral ports for the receivers and metrics; the seed's
    `health_check.port` (13133) moved to a free port, as `port` and `endpoint` exclude each other.
    """
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
extensions:
  health_check:
    port: {health_port}
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
"""


@pytest.fixture(scope="module")
def sink(module_pool):
    return module_pool.sink()


@pytest.fixture(scope="module")
def collector(module_pool, sink):
    seed = SEED.read_text()
    assert "<gRPC-Endpoint>" in seed and "<gRPC-Token>" in seed
    config = seed.replace("<gRPC-Endpoint>", sink.endpoint).replace("<gRPC-Token>", TOKEN)
    return module_pool.collector(config, overlays=[overlay(free_port())])


def normalized(message):
    """A protobuf message as a dict, with attribute lists sorted by key (order is no data)."""

    def sort_attributes(node):
        if isinstance(node, dict):
            return {key: sort_attributes(value) for key, value in node.items()}
        if isinstance(node, list):
            items = [sort_attributes(value) for value in node]
            if items and all(isinstance(i, dict) and "key" in i and "value" in i for i in items):
                items.sort(key=lambda i: i["key"])
            return items
        return node

    return sort_attributes(MessageToDict(message, preserving_proto_field_name=True))


def flatten(request):
    """`{span_id: (resource, scope, span)}` of an ExportTraceServiceRequest."""
    return {
        span.span_id: (resource_spans.resource, scope_spans.scope, span)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }


def assert_delivered_intact(sink, memory):
    """Every span the SDK produced reached the sink with identical content."""
    produced = flatten(encode_spans(memory.get_finished_spans()))
    sink.wait_for_span_ids(produced.keys())
    received = {span.span_id: (resource, scope, span) for resource, scope, span in sink.spans()}
    for span_id, (resource, scope, span) in produced.items():
        got_resource, got_scope, got_span = received[span_id]
        assert normalized(got_span) == normalized(span), f"span {span.name!r} changed"
        assert normalized(got_resource) == normalized(resource), "resource changed"
        assert normalized(got_scope) == normalized(scope), "instrumentation scope changed"


def assert_ids_and_relations(sink, linked, parent, child):
    """Trace/span/parent ids and the link read back equal the SDK's span contexts."""
    received = {span.span_id: span for _, _, span in sink.spans()}

    def ids(span):
        context = span.get_span_context()
        return context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big")

    parent_trace, parent_id = ids(parent)
    child_trace, child_id = ids(child)
    linked_trace, linked_id = ids(linked)
    got_parent, got_child = received[parent_id], received[child_id]
    assert got_parent.trace_id == parent_trace and got_child.trace_id == child_trace == parent_trace
    assert got_parent.parent_span_id == b""
    assert got_child.parent_span_id == parent_id
    assert (
        got_parent.kind == got_parent.SPAN_KIND_SERVER
        and got_child.kind == got_child.SPAN_KIND_CLIENT
    )
    assert [(link.trace_id, link.span_id) for link in got_child.links] == [
        (linked_trace, linked_id)
    ]
    assert [e.name for e in got_parent.events] == ["cache.miss", "no-attributes"]
    attributes = {kv.key: kv.value for kv in got_parent.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["mesh.latency_ratio"].double_value == 0.75
    assert (
        attributes["mesh.retried"].HasField("bool_value")
        and not attributes["mesh.retried"].bool_value
    )
    assert [v.string_value for v in attributes["mesh.hops"].array_value.values] == [
        "ingress",
        "productpage",
        "reviews",
    ]
    assert got_child.status.code == got_child.status.STATUS_CODE_ERROR
    assert got_child.status.message == "upstream reset"


def assert_token_sent(sink, span_ids):
    """Every export carrying these spans had the seed's `Authentication` header (gRPC metadata
    keys are lowercase)."""
    requests_with_spans = [
        metadata
        for request, metadata in sink.received_traces()
        if span_ids & set(flatten(request).keys())
    ]
    assert requests_with_spans
    for metadata in requests_with_spans:
        assert metadata.get("authentication") == [TOKEN], metadata


def send_and_verify(exporter, sink, service):
    """Produces the test spans through `exporter` and checks what the sink received."""
    provider, memory = make_provider(exporter, service)
    try:
        linked, parent, child = produce_spans(provider)
        assert_delivered_intact(sink, memory)
        assert_ids_and_relations(sink, linked, parent, child)
        assert_token_sent(sink, set(flatten(encode_spans(memory.get_finished_spans())).keys()))
    finally:
        provider.shutdown()


def test_spans_over_grpc_arrive_intact(collector, sink):
    """SDK → OTLP/gRPC → seed collector → OTLP/gRPC sink: ids, parent/child, kinds, attributes of
    every type, events, links, status, resource and scope are all unchanged, and the exporter
    sent the configured `Authentication` header."""
    exporter = GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=10)
    send_and_verify(exporter, sink, "productpage-grpc")


def test_spans_over_http_arrive_intact(collector, sink):
    """SDK → OTLP/HTTP (protobuf) → seed collector → OTLP/gRPC sink, content unchanged."""
    with http_session() as session:
        endpoint = f"http://{collector.http_endpoint}/v1/traces"
        exporter = HttpSpanExporter(endpoint=endpoint, timeout=10, session=session)
        send_and_verify(exporter, sink, "productpage-http")


def test_span_counters_match_deliveries(collector, sink):
    """The self-metrics count what the receiver accepted and the otlp exporter sent."""
    exporter = GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=10)
    send_and_verify(exporter, sink, "counted")

    def counted():
        accepted = collector.metric("otelcol_receiver_accepted_spans_total", receiver="otlp")
        sent = collector.metric("otelcol_exporter_sent_spans_total", exporter="otlp")
        assert accepted >= 3, accepted
        assert sent == accepted == len(sink.spans()), (accepted, sent, len(sink.spans()))
        return True

    eventually(counted)


def test_logs_go_through_batch_to_logging_exporter(collector):
    """An OTLP/JSON log record is accepted into the logs pipeline, counted, and printed by the
    `logging` exporter (loglevel debug shows the record's body)."""
    before = collector.metric(
        "otelcol_receiver_accepted_log_records_total", receiver="otlp", transport="http"
    )
    body = "seed-log-" + uuid.uuid4().hex
    response = post(
        f"http://{collector.http_endpoint}/v1/logs",
        json.dumps(log_request_json(body)).encode(),
        JSON,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(JSON)

    def accepted():
        now = collector.metric(
            "otelcol_receiver_accepted_log_records_total", receiver="otlp", transport="http"
        )
        assert now == before + 1, (before, now)
        return True

    eventually(accepted)
    eventually(
        lambda: body in collector.log(), message="the logging exporter never printed the log body"
    )


def test_health_check_answers_200(collector):
    """The seed's health_check extension serves 200 once the collector is ready."""
    assert collector.health_endpoint, "no 'health check listening' line in the log"
    with http_session() as session:
        response = session.get(f"http://{collector.health_endpoint}/", timeout=10)
    assert response.status_code == 200, response.text
