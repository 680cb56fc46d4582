"""Small helpers shared by the end-to-end tests: polling, ports, OTLP payloads, raw clients.

Everything here talks to 127.0.0.1 only.
"""

import gzip
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import grpc
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACES_GRPC_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_GRPC_PATH = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# Never send loopback traffic through a proxy that the environment may configure.
GRPC_CLIENT_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def eventually(check, timeout=20.0, interval=0.05, message="condition not met"):
    """Calls `check` until it returns a truthy value without raising AssertionError.

    Returns that value; after `timeout` seconds re-raises the last AssertionError (or raises
    one with `message`). This is the only way the tests wait for something to happen.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = check()
            if value:
                return value
            last_error = None
        except AssertionError as error:
            last_error = error
        if time.monotonic() >= deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(f"{message} (waited {timeout:.0f}s)")
        time.sleep(interval)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_session():
    """A `requests` session that ignores proxy settings from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def string_kv(key, value):
    """An OTLP KeyValue holding a string."""
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def trace_request(span_count=1, name="e2e", payload=None, service="meshtrace-e2e"):
    """An ExportTraceServiceRequest with `span_count` spans of one new trace.

    `payload`, when given, is stored as a string attribute on every span (to make big requests).
    """
    trace_id = os.urandom(16)
    now = time.time_ns()
    attributes = [string_kv("payload", payload)] if payload is not None else []
    spans = [
        trace_pb2.Span(
            trace_id=trace_id,
            span_id=os.urandom(8),
            name=f"{name}-{index}",
            kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1_000_000,
            attributes=attributes,
        )
        for index in range(span_count)
    ]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=[string_kv("service.name", service)]),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="e2e"), spans=spans
                    )
                ],
            )
        ]
    )


def span_ids(request):
    """The span ids of every span in an ExportTraceServiceRequest."""
    return {
        span.span_id
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }


def log_request_json(body, service="meshtrace-e2e"):
    """An OTLP/JSON ExportLogsServiceRequest with one INFO record whose body is `body`."""
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "e2e"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(time.time_ns()),
                                "severityNumber": 9,
                                "severityText": "INFO",
                                "body": {"stringValue": body},
                            }
                        ],
                    }
                ],
            }
        ]
    }


def post(url, body, content_type=PROTOBUF, headers=None, timeout=10):
    """POSTs raw bytes; returns the `requests.Response`."""
    all_headers = {"Content-Type": content_type} if content_type else {}
    all_headers.update(headers or {})
    with http_session() as session:
        return session.post(url, data=body, headers=all_headers, timeout=timeout)


def post_traces(http_endpoint, request, timeout=10):
    """POSTs an ExportTraceServiceRequest as protobuf to `/v1/traces`."""
    return post(f"http://{http_endpoint}/v1/traces", request.SerializeToString(), timeout=timeout)


def gzipped(data):
    """`data` gzip-compressed."""
    return gzip.compress(data)


def grpc_export_raw(endpoint, body, path=TRACES_GRPC_PATH, timeout=10, metadata=None):
    """Sends raw bytes as the request message of a unary gRPC call.

    Returns `(grpc.StatusCode, details)`; the body is not serialized or checked by the client.
    """
    with grpc.insecure_channel(endpoint, options=GRPC_CLIENT_OPTIONS) as channel:
        call = channel.unary_unary(path)
        try:
            call(body, timeout=timeout, metadata=metadata)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            return error.code(), error.details()


def grpc_export_traces(endpoint, request, timeout=10):
    """Exports an ExportTraceServiceRequest over gRPC; returns `(grpc.StatusCode, details)`."""
    return grpc_export_raw(endpoint, request.SerializeToString(), timeout=timeout)


class RecordingHttpServer:
    """A plain HTTP/1.1 app on 127.0.0.1 (http.server in a thread) that answers every request
    `200 ok` and records it: `received(path)` waits for the request to `path` and returns its
    headers as `{lowercase name: [values in arrival order]}`.

    A request target in absolute form is recorded under its path as well.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._requests = []
        self._server = None
        self._thread = None

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {}
                for name, value in self.headers.items():
                    headers.setdefault(name.lower(), []).append(value)
                recorder._record(self.command, self.path, headers)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _record(self, method, target, headers):
        path = urlsplit(target).path if "://" in target else target.split("?", 1)[0]
        with self._lock:
            self._requests.append(
                {"method": method, "target": target, "path": path, "headers": headers}
            )

    def requests(self):
        with self._lock:
            return list(self._requests)

    def received(self, path, timeout=10.0):
        """The headers of the (single) request received for `path`, waiting for it."""

        def arrived():
            found = [request for request in self.requests() if request["path"] == path]
            assert found, f"no request for {path} reached {self.endpoint}"
            assert len(found) == 1, f"{len(found)} requests for {path} reached {self.endpoint}"
            return found[0]["headers"]

        return eventually(arrived, timeout=timeout)

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class PostSink:
    """A destination for an HTTP exporter on 127.0.0.1: records every POST as
    `(path, headers, body)` and answers `status` (with `content_type`, when given) and an empty
    body."""

    def __init__(self, status=200, content_type=None):
        self.requests = []
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    sink.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
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
        """`(lowercase headers, body)` of every request to `path`, gunzipped when needed."""
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


def traced_to(sink_port):
    """The Istio resources, as YAML documents to follow a `kind: Sidecar` one, that trace every
    request and export to an OTLP/gRPC sink on 127.0.0.1:`sink_port`: an IstioOperator's
    OpenTelemetry extension provider and a mesh-wide Telemetry at 100 % sampling."""
    return f"""\
---
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - name: otel-tracing
      opentelemetry: {{service: 127.0.0.1, port: {sink_port}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: otel-tracing}}]
    randomSamplingPercentage: 100
"""
