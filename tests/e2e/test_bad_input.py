"""Bad input is refused with the right status, and never hurts the collector.

One collector (HTTP body limit 1024 bytes, gRPC message limit 1 MiB) exporting to a sink gets
every kind of malformed request; the last test proves it still accepts and delivers data.
"""

import json

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from e2e_util import (
    JSON,
    PROTOBUF,
    grpc_export_raw,
    grpc_export_traces,
    gzipped,
    http_session,
    post,
    post_traces,
    span_ids,
    trace_request,
)

BODY_LIMIT = 1024

CONFIG = f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        max_recv_msg_size_mib: 1
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: {BODY_LIMIT}
exporters:
  otlp:
    endpoint: ${{env:SINK_ENDPOINT}}
    tls:
      insecure: true
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"""

# A field-1 tag with wire type 7, which does not exist, followed by noise.
GARBAGE = b"\x0f\xff\xfe\xfd garbage \x00\x01\x02" * 4


@pytest.fixture(scope="module")
def sink(module_pool):
    return module_pool.sink()


@pytest.fixture(scope="module")
def collector(module_pool, sink):
    return module_pool.collector(CONFIG, env={"SINK_ENDPOINT": sink.endpoint})


def traces_url(collector):
    return f"http://{collector.http_endpoint}/v1/traces"


def valid_body():
    body = trace_request(span_count=2).SerializeToString()
    assert len(body) < BODY_LIMIT
    return body


def assert_status_body(response, rpc_code):
    """A protobuf error answer carries a google.rpc.Status with `rpc_code` and a message."""
    assert response.headers.get("Content-Type", "").startswith(PROTOBUF), response.headers
    status = status_pb2.Status.FromString(response.content)
    assert status.code == rpc_code, status
    assert status.message, status


def test_truncated_protobuf_is_400(collector):
    """A protobuf body cut in the middle is a 400 with an INVALID_ARGUMENT Status body."""
    body = valid_body()
    response = post(traces_url(collector), body[: len(body) // 2])
    assert response.status_code == 400, response.text
    assert_status_body(response, grpc.StatusCode.INVALID_ARGUMENT.value[0])


def test_garbage_protobuf_is_400(collector):
    """Bytes that are not protobuf at all are a 400."""
    response = post(traces_url(collector), GARBAGE)
    assert response.status_code == 400, response.text
    assert_status_body(response, grpc.StatusCode.INVALID_ARGUMENT.value[0])


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"resourceSpans": "not a list"}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 42}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": true}]}]}]}',
    ],
    ids=["invalid-json", "list-is-string", "name-is-number", "bad-hex-id", "time-is-bool"],
)
def test_bad_json_is_400(collector, body):
    """Invalid JSON, and valid JSON with the wrong types, are a 400 with a JSON error body."""
    response = post(traces_url(collector), body, JSON)
    assert response.status_code == 400, response.text
    assert response.headers.get("Content-Type", "").startswith(JSON), response.headers
    assert json.loads(response.content).get("code") == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_unknown_content_type_is_415(collector):
    """A body that is neither protobuf nor JSON is 415 Unsupported Media Type."""
    response = post(traces_url(collector), valid_body(), "text/plain")
    assert response.status_code == 415, response.text


def test_body_over_the_limit_is_413(collector):
    """A body larger than max_request_body_size is 413."""
    response = post(
        traces_url(collector), trace_request(payload="x" * 2 * BODY_LIMIT).SerializeToString()
    )
    assert response.status_code == 413, response.text


def test_gzip_bomb_is_413(collector):
    """A small gzip body that inflates past max_request_body_size is 413, not inflated whole."""
    bomb = gzipped(trace_request(payload="\0" * (512 * 1024)).SerializeToString())
    assert len(bomb) < BODY_LIMIT, len(bomb)
    response = post(traces_url(collector), bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text


def test_invalid_gzip_is_400(collector):
    """A body labelled gzip that is not gzip is 400."""
    response = post(
        traces_url(collector), b"this is not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 400, response.text


def test_valid_gzip_is_accepted(collector, sink):
    """A correct gzip body is inflated, accepted and delivered."""
    request = trace_request(span_count=2)
    body = gzipped(request.SerializeToString())
    response = post(traces_url(collector), body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    sink.wait_for_span_ids(span_ids(request))


def test_empty_body_is_empty_success(collector):
    """An empty protobuf body is an empty request: 200 with an empty ExportTraceServiceResponse."""
    response = post(traces_url(collector), b"")
    assert response.status_code == 200, response.text
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success") or answer.partial_success.rejected_spans == 0


def test_wrong_method_is_405(collector):
    """GET on /v1/traces is 405 Method Not Allowed."""
    with http_session() as session:
        response = session.get(traces_url(collector), timeout=10)
    assert response.status_code == 405, response.text


def test_unknown_path_is_404(collector):
    """A POST to a path that is no OTLP route is 404."""
    response = post(f"http://{collector.http_endpoint}/v1/nothing", valid_body())
    assert response.status_code == 404, response.text


def test_grpc_garbage_is_invalid_argument(collector):
    """Raw bytes that are not an ExportTraceServiceRequest get INVALID_ARGUMENT over gRPC."""
    code, details = grpc_export_raw(collector.grpc_endpoint, GARBAGE)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)


def test_grpc_truncated_is_invalid_argument(collector):
    """A truncated protobuf message gets INVALID_ARGUMENT over gRPC."""
    body = valid_body()
    code, details = grpc_export_raw(collector.grpc_endpoint, body[: len(body) // 2])
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)


def test_grpc_oversized_is_resource_exhausted(collector):
    """A 2 MiB message over a 1 MiB max_recv_msg_size_mib gets RESOURCE_EXHAUSTED."""
    request = trace_request(payload="y" * (2 * 1024 * 1024))
    code, details = grpc_export_traces(collector.grpc_endpoint, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)


def test_collector_still_accepts_and_delivers(collector, sink):
    """After all the bad input the process is alive and valid data still flows on both
    transports."""
    assert collector.alive(), collector.log()
    over_http, over_grpc = trace_request(span_count=3), trace_request(span_count=3)
    response = post_traces(collector.http_endpoint, over_http)
    assert response.status_code == 200, response.text
    assert grpc_export_traces(collector.grpc_endpoint, over_grpc) == (grpc.StatusCode.OK, "")
    sink.wait_for_span_ids(span_ids(over_http) | span_ids(over_grpc))
    assert collector.alive(), collector.log()
