"""The otlphttp exporter delivers traces and logs to an OTLP/HTTP destination: the signal's
URL under the base endpoint, protobuf, gzip by default, configured headers, content intact."""

import gzip
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from e2e_util import JSON, eventually, grpc_export_traces, log_request_json, post, trace_request

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


class HttpSink:
    """A minimal OTLP/HTTP destination on 127.0.0.1 recording `(path, headers, body)`."""

    def __init__(self):
        self.requests = []
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    sink.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def received(self, path):
        """`(headers, decoded body)` of every request to `path`, gunzipped when needed."""
        found = []
        for request_path, headers, body in list(self.requests):
            if request_path != path:
                continue
            lowered = {key.lower(): value for key, value in headers.items()}
            if lowered.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            found.append((lowered, body))
        return found

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_sink():
    sink = HttpSink()
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
