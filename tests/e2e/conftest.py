"""Fixtures for the end-to-end tests: a `Collector` (the real `meshtrace` process) and an
`OtlpSink` (a real OTLP/gRPC server written with grpcio that plays the destination).

`MESHTRACE_BIN` names the binary; by default `target/debug/meshtrace` of this workspace.
"""

import os
import re
import signal
import subprocess
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from e2e_util import eventually, http_session

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("MESHTRACE_BIN", REPO / "target" / "debug" / "meshtrace"))
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0

# Loopback traffic from the OpenTelemetry SDK's exporters must not go through a proxy.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ENDPOINT = re.compile(r'endpoint="?([0-9.:\[\]a-zA-Z]+?)"?(?:\s|$)')
_FIELD = r'{name}="?([^"\s]+)"?'
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# Every collector still running, so a failing test's report can show their logs.
_RUNNING = []


def require_binary():
    """Fails clearly when the binary has not been built."""
    if not BINARY.is_file():
        pytest.fail(f"{BINARY} not found: run `cargo build -p meshtrace` or set MESHTRACE_BIN")
    return BINARY


def connectable(address):
    """An address a client can connect to: a wildcard host becomes the loopback one."""
    if address.startswith("0.0.0.0:"):
        return "127.0.0.1:" + address.split(":", 1)[1]
    if address.startswith("[::]:"):
        return "[::1]:" + address.rsplit(":", 1)[1]
    return address


def metric_key(name, labels):
    """The canonical key of a sample: `name{a="x",b="y"}` with labels sorted by name."""
    if not labels:
        return name
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def parse_prometheus(text):
    """Parses Prometheus/OpenMetrics text into `{metric_key: value}`."""
    samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, raw_labels, value = match.groups()
        labels = dict(_LABEL.findall(raw_labels or ""))
        samples[metric_key(name, labels)] = float(value)
    return samples


class Collector:
    """One `meshtrace collector` process with its config files and log.

    The log (stderr and stdout together) goes to a file; `start()` waits for
    "everything is ready" and reads the bound addresses from the log.
    """

    def __init__(self, workdir, configs, sets=(), env=None, args=()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_paths = []
        for index, text in enumerate(configs):
            path = self.workdir / f"config-{index}.yaml"
            path.write_text(text)
            self.config_paths.append(path)
        self.sets = list(sets)
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("RUST_LOG", None)
        self.args = list(args)
        self.log_path = self.workdir / "collector.log"
        self.process = None
        self.exit_code = None
        self.receivers = {}
        self.metrics_endpoint = None
        self.health_endpoint = None

    def command(self):
        """The command line that starts this collector."""
        command = [str(require_binary()), "collector"]
        for path in self.config_paths:
            command += ["--config", str(path)]
        for assignment in self.sets:
            command += ["--set", assignment]
        return command + self.args

    def start(self, timeout=READY_TIMEOUT):
        """Starts the process and waits until it logs that everything is ready."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
            )
        _RUNNING.append(self)
        eventually(self._ready, timeout=timeout, message="the collector never logged readiness")
        self._parse_endpoints()
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(
                f"the collector exited with {self.process.returncode} while starting:\n{self.log()}"
            )
        return "everything is ready" in self.log()

    def _parse_endpoints(self):
        for line in self.log().splitlines():
            if "listening" not in line:
                continue
            endpoint = _ENDPOINT.search(line)
            if not endpoint:
                continue
            address = connectable(endpoint.group(1))
            if "health check" in line:
                self.health_endpoint = address
            elif "metrics listening" in line:
                self.metrics_endpoint = address
            else:
                receiver = re.search(_FIELD.format(name="receiver"), line)
                protocol = re.search(_FIELD.format(name="protocol"), line)
                if receiver and protocol:
                    self.receivers[(receiver.group(1), protocol.group(1))] = address

    def endpoint(self, protocol, receiver="otlp"):
        """The address a receiver listens on for `protocol` (`grpc` or `http`)."""
        key = (receiver, protocol)
        assert key in self.receivers, f"no {key} in the log; found {self.receivers}"
        return self.receivers[key]

    @property
    def grpc_endpoint(self):
        return self.endpoint("grpc")

    @property
    def http_endpoint(self):
        return self.endpoint("http")

    def log(self):
        """Everything the process printed so far, ANSI colours removed."""
        try:
            text = self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return _ANSI.sub("", text)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def metrics(self):
        """The collector's own metrics as `{name{labels}: value}` (labels sorted by name)."""
        assert self.metrics_endpoint, "the collector did not log its metrics endpoint"
        with http_session() as session:
            response = session.get(f"http://{self.metrics_endpoint}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        return parse_prometheus(response.text)

    def metric(self, name, **labels):
        """The sum of every sample of `name` whose labels include `labels` (0 when absent)."""
        total = 0.0
        for key, value in self.metrics().items():
            sample_name, _, raw_labels = key.partition("{")
            if sample_name != name:
                continue
            sample_labels = dict(_LABEL.findall(raw_labels))
            if all(sample_labels.get(k) == str(v) for k, v in labels.items()):
                total += value
        return total

    def send_signal(self, signum=signal.SIGTERM):
        self.process.send_signal(signum)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for the process to exit and returns its exit code."""
        try:
            self.exit_code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as timeout_error:
            self.process.kill()
            self.process.wait(timeout=10)
            message = f"the collector did not exit within {timeout}s:\n{self.log()}"
            raise AssertionError(message) from timeout_error
        finally:
            if self in _RUNNING:
                _RUNNING.remove(self)
        return self.exit_code

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, and assert the collector exited 0."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        assert code == 0, f"the collector exited with {code}:\n{self.log()}"
        return code


class Sidecar(Collector):
    """One `meshtrace sidecar --config FILE` process with its config file and log.

    `start()` waits until the admin listener (bound last) logged `listening listener="admin"
    endpoint=…` and answers `/ready` with 200; the bound address of every listener (given as
    `127.0.0.1:0`) is read from its `listening` log line into `listeners`.
    """

    def __init__(self, workdir, config, env=None, args=()):
        super().__init__(workdir, [config], env=env, args=args)
        self.log_path = self.workdir / "sidecar.log"
        self.listeners = {}

    def command(self):
        """The command line that starts this sidecar."""
        return [str(require_binary()), "sidecar", "--config", str(self.config_paths[0])] + self.args

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(
                f"the sidecar exited with {self.process.returncode} while starting:\n{self.log()}"
            )
        self._parse_endpoints()
        if "admin" not in self.listeners:
            return False
        try:
            with http_session() as session:
                response = session.get(f"http://{self.listeners['admin']}/ready", timeout=2)
        except OSError:
            return False
        return response.status_code == 200

    def _parse_endpoints(self):
        for line in self.log().splitlines():
            if "listening" not in line or "stopped listening" in line:
                continue
            listener = re.search(_FIELD.format(name="listener"), line)
            endpoint = _ENDPOINT.search(line)
            if listener and endpoint:
                self.listeners[listener.group(1)] = connectable(endpoint.group(1))

    def listener(self, name):
        """The bound address of listener `name` (`inbound`, `outbound` or `admin`)."""
        assert name in self.listeners, f"no {name} listener in the log; found {self.listeners}"
        return self.listeners[name]

    @property
    def inbound_endpoint(self):
        return self.listener("inbound")

    @property
    def outbound_endpoint(self):
        return self.listener("outbound")

    @property
    def admin_endpoint(self):
        return self.listener("admin")


class _TraceHandler(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink):
        self.sink = sink

    def Export(self, request, context):  # noqa: N802
        return self.sink.handle(request, context, trace_service_pb2.ExportTraceServiceResponse)


class _LogsHandler(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, sink):
        self.sink = sink

    def Export(self, request, context):  # noqa: N802
        return self.sink.handle(request, context, logs_service_pb2.ExportLogsServiceResponse)


class _MetricsHandler(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink):
        self.sink = sink

    def Export(self, request, context):  # noqa: N802
        return self.sink.handle(request, context, metrics_service_pb2.ExportMetricsServiceResponse)


class OtlpSink:
    """A real OTLP/gRPC destination on 127.0.0.1 that records what it receives.

    Modes: answer OK (default), answer a given status (`fail_with`), or stall every request
    until `release()` (or `stop()`). `stop()` then `start()` serves again on the same port.
    """

    STALL_LIMIT = 120.0

    def __init__(self, port=0):
        self.port = port
        self.server = None
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._mode = ("ok", None, None)
        self.trace_requests = []
        self.log_requests = []
        self.metric_requests = []
        self.attempts = 0

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        """Serves on the sink's port (a new one the first time if it was 0)."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16),
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceHandler(self), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsHandler(self), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsHandler(self), server)
        bound = server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert bound, f"the sink could not bind 127.0.0.1:{self.port}"
        self.port = bound
        server.start()
        self.server = server
        return self

    def stop(self):
        """Stops serving; stalled calls are released and cancelled."""
        self._released.set()
        if self.server is not None:
            self.server.stop(grace=None).wait(10)
            self.server = None

    def restart(self):
        self.stop()
        return self.start()

    def answer_ok(self):
        self._mode = ("ok", None, None)

    def fail_with(self, code, message="failing on purpose"):
        """Answer every request with gRPC status `code`."""
        self._mode = ("fail", code, message)

    def stall(self):
        """Hold every request without answering until `release()`."""
        self._released.clear()
        self._mode = ("stall", None, None)

    def release(self):
        """Stop stalling: held requests and later ones are answered OK."""
        self._mode = ("ok", None, None)
        self._released.set()

    def handle(self, request, context, response_type):
        with self._lock:
            self.attempts += 1
        if self._mode[0] == "stall":
            self._released.wait(self.STALL_LIMIT)
        mode, code, message = self._mode
        if mode == "fail":
            context.abort(code, message)
        if not context.is_active():
            return response_type()
        metadata = {}
        for key, value in context.invocation_metadata():
            metadata.setdefault(key, []).append(value)
        with self._lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self.trace_requests.append((request, metadata))
            elif isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
                self.metric_requests.append((request, metadata))
            else:
                self.log_requests.append((request, metadata))
        return response_type()

    def received_metrics(self):
        with self._lock:
            return list(self.metric_requests)

    def received_traces(self):
        with self._lock:
            return list(self.trace_requests)

    def spans(self):
        """Every span received so far, as `(resource, scope, span)` tuples."""
        found = []
        for request, _ in self.received_traces():
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append((resource_spans.resource, scope_spans.scope, span))
        return found

    def span_ids(self):
        return [span.span_id for _, _, span in self.spans()]

    def wait_for_span_ids(self, expected, timeout=20.0):
        """Waits until every span id of `expected` was received; returns all received ids."""
        expected = set(expected)

        def arrived():
            missing = expected - set(self.span_ids())
            assert not missing, f"{len(missing)} of {len(expected)} spans have not arrived"
            return self.span_ids()

        return eventually(arrived, timeout=timeout)


class _Pool:
    """Starts collectors and sinks for a fixture and always stops them afterwards."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.collectors = []
        self.sinks = []

    def collector(self, config, overlays=(), sets=(), env=None, args=(), start=True):
        workdir = self.directory / f"collector-{len(self.collectors)}"
        collector = Collector(workdir, [config, *overlays], sets=sets, env=env, args=args)
        self.collectors.append(collector)
        return collector.start() if start else collector

    def sidecar(self, config, env=None, args=(), start=True):
        """A `meshtrace sidecar` process; stopped (SIGTERM, exit 0 asserted) with the pool."""
        workdir = self.directory / f"sidecar-{len(self.collectors)}"
        sidecar = Sidecar(workdir, config, env=env, args=args)
        self.collectors.append(sidecar)
        return sidecar.start() if start else sidecar

    def sink(self, port=0, start=True):
        sink = OtlpSink(port)
        self.sinks.append(sink)
        return sink.start() if start else sink

    def close(self):
        errors = []
        for collector in self.collectors:
            try:
                if collector.alive():
                    collector.stop()
            except AssertionError as error:
                errors.append(str(error))
        for sink in self.sinks:
            sink.stop()
        if errors:
            pytest.fail("\n".join(errors))


@pytest.fixture
def pool(tmp_path):
    """Per-test collectors (`pool.collector(yaml)`) and sinks (`pool.sink()`)."""
    resources = _Pool(tmp_path)
    yield resources
    resources.close()


@pytest.fixture(scope="module")
def module_pool(tmp_path_factory):
    """Like `pool`, shared by every test of one module."""
    resources = _Pool(tmp_path_factory.mktemp("module"))
    yield resources
    resources.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the log of every running collector to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for index, collector in enumerate(list(_RUNNING)):
            tail = "\n".join(collector.log().splitlines()[-200:])
            report.sections.append((f"meshtrace log #{index} ({collector.log_path})", tail))
