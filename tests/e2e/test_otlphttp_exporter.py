"""The otlphttp exporter delivers traces and logs to an OTLP/HTTP destination: the signal's
URL under the base endpoint, protobuf, gzip by default, configured headers, content intact."""

import json
import uuid

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from e2e_util import (
    JSON,
    PostSink,
    eventually,
    grpc_export_traces,
    log_request_json,
    post,
    trace_request,
)

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlphttp:
    endpoint: http://${env:SINK_ENDPOINT}
    headers:
      X-Api-Key: e2e-key
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
"""


@pytest.fixture
def http_sink():
    sink = PostSink(status=200, content_type="application/x-protobuf")
    yield sink
    sink.close()


def test_traces_and_logs_reach_an_otlp_http_destination(http_sink, pool):
    """Spans sent over gRPC and a log record sent as JSON leave through otlphttp as gzip
    protobuf POSTs to /v1/traces and /v1/logs with the configured header, unchanged."""
    collector = pool.collector(CONFIG, env={"SINK_ENDPOINT": http_sink.endpoint})
    request = trace_request(span_count=4)
    assert grpc_export_traces(collector.grpc_endpoint, request) == (grpc.StatusCode.OK, "")
    body = "otlphttp-log-" + uuid.uuid4().hex
    response = post(
        f"http://{collector.http_endpoint}/v1/logs",
        json.dumps(log_request_json(body)).encode(),
        JSON,
    )
    assert response.status_code == 200, response.text

    traces = eventually(lambda: http_sink.received("/v1/traces"))
    headers, payload = traces[0]
    assert headers["content-type"] == "application/x-protobuf"
    assert headers.get("content-encoding") == "gzip", "gzip is the default compression"
    assert headers.get("x-api-key") == "e2e-key"
    delivered = trace_service_pb2.ExportTraceServiceRequest.FromString(payload)
    assert delivered == request

    logs = eventually(lambda: http_sink.received("/v1/logs"))
    records = [
        record
        for _, payload in logs
        for resource_logs in logs_service_pb2.ExportLogsServiceRequest.FromString(
            payload
        ).resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]
    assert [record.body.string_value for record in records] == [body]
    assert records[0].severity_text == "INFO" and records[0].severity_number == 9
