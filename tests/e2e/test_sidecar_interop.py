"""Trace-context interop between the sidecar and the OpenTelemetry Python SDK's propagators.

The acceptance item: "The OpenTelemetry Python SDK's propagators read what the sidecar writes
and the sidecar reads what they write". Everything is a real process on 127.0.0.1: the
`meshtrace sidecar` binary (inbound, outbound and admin listeners on port 0, Istio's
OpenTelemetry provider at 100 % sampling pointing at the grpcio `OtlpSink`), a Python
http.server app behind the inbound listener, and a Python downstream server reached through
the outbound listener the way an app run with `HTTP_PROXY` reaches it (absolute-form requests).

Only the SDK's own propagators encode and decode headers here: `TraceContextTextMapPropagator`,
`W3CBaggagePropagator`, and `B3SingleFormat` / `B3MultiFormat` from
opentelemetry-propagator-b3. Span ids and parents are checked against what the sidecar
exported to the sink.
"""

import re
import uuid
from types import SimpleNamespace

import pytest
from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from e2e_util import RecordingHttpServer, eventually, http_session, traced_to

SIDECAR_CONFIG = """\
kind: Sidecar
metadata: {{name: interop-v1, namespace: default, labels: {{app: interop, version: v1}}}}
spec:
  inbound: {{listen: 127.0.0.1:0, app: {app}}}
  outbound: {{listen: 127.0.0.1:0}}
  admin: {{listen: 127.0.0.1:0}}
"""

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT

TRACECONTEXT = TraceContextTextMapPropagator()
BAGGAGE = W3CBaggagePropagator()
B3_SINGLE = B3SingleFormat()
B3_MULTI = B3MultiFormat()
B3_MULTI_HEADERS = ("x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags")
B3_MULTI_PARENT = "x-b3-parentspanid"

# What the SDK's client sends: one propagator per format, as an SDK app would configure it.
CLIENT_FORMATS = {
    "w3c": CompositePropagator([TRACECONTEXT, BAGGAGE]),
    "b3single": B3_SINGLE,
    "b3multi": B3_MULTI,
}

VALID_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
SPAN_TIMEOUT = 15.0

_IDS = RandomIdGenerator()
_TRACER = TracerProvider().get_tracer("meshtrace-e2e-interop")


# === the mesh: sink, app, sidecar, downstream ===


@pytest.fixture(scope="module")
def mesh(module_pool):
    """One sidecar for the module: the app behind its inbound listener, a downstream server
    for its outbound listener, spans to an OTLP/gRPC sink. Stopped with SIGTERM (exit 0)."""
    sink = module_pool.sink()
    app = RecordingHttpServer().start()
    downstream = RecordingHttpServer().start()
    try:
        config = SIDECAR_CONFIG.format(app=app.endpoint) + traced_to(sink.port)
        sidecar = module_pool.sidecar(config)
        yield SimpleNamespace(sink=sink, app=app, downstream=downstream, sidecar=sidecar)
        sidecar.stop()
    finally:
        app.stop()
        downstream.stop()


# === helpers ===


def unique_path(prefix):
    return f"/{prefix}/{uuid.uuid4().hex}"


def call_inbound(mesh, path, headers):
    """A caller's request to the sidecar's inbound listener; asserts the app answered 200."""
    with http_session() as session:
        response = session.get(
            f"http://{mesh.sidecar.inbound_endpoint}{path}", headers=headers, timeout=10
        )
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.text == "ok"


def call_outbound(mesh, path, headers):
    """The app's request to the downstream server through the outbound listener, the way an
    app with `HTTP_PROXY=http://<outbound>` sends it (absolute-form request target)."""
    proxies = {"http": f"http://{mesh.sidecar.outbound_endpoint}"}
    with http_session() as session:
        response = session.get(
            f"http://{mesh.downstream.endpoint}{path}",
            headers=headers,
            proxies=proxies,
            timeout=10,
        )
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.text == "ok"


def one(headers, name):
    """The single value of header `name`; fails when it is missing or repeated."""
    values = headers.get(name)
    assert values, f"no {name} header; received {headers}"
    assert len(values) == 1, f"{name} received {len(values)} times: {values}"
    return values[0]


def extracted(propagator, carrier):
    """The span context `propagator` reads from `carrier` (invalid when it reads none)."""
    return trace.get_current_span(propagator.extract(carrier)).get_span_context()


def b3_contexts(headers):
    """The contexts the SDK's B3 propagators decode from each B3 form present, separately
    (the SDK's B3 extractor prefers `b3` when both forms are there)."""
    found = {}
    if "b3" in headers:
        found["b3single"] = extracted(B3_SINGLE, {"b3": headers["b3"]})
    multi = {name: headers[name] for name in B3_MULTI_HEADERS if name in headers}
    if multi:
        found["b3multi"] = extracted(B3_MULTI, multi)
    return found


def identity(context):
    """What every trace format must agree on: trace id, span id, sampled."""
    return (context.trace_id, context.span_id, context.trace_flags.sampled)


def span_bytes(span_id):
    return span_id.to_bytes(8, "big")


def trace_bytes(trace_id):
    return trace_id.to_bytes(16, "big")


def wait_for_span(sink, trace_id, kind):
    """The one span of `kind` in trace `trace_id` (an int) at the sink, waiting for it."""
    wanted = trace_bytes(trace_id)

    def arrived():
        spans = [span for _, _, span in sink.spans() if span.trace_id == wanted]
        assert spans, f"no span of trace {trace_id:032x} reached the sink"
        return spans

    spans = eventually(arrived, timeout=SPAN_TIMEOUT)
    matching = [span for span in spans if span.kind == kind]
    kinds = [trace_pb2.Span.SpanKind.Name(span.kind) for span in spans]
    assert len(matching) == 1, f"trace {trace_id:032x}: expected one {kind} span, got {kinds}"
    return matching[0]


def string_attribute(span, key):
    for attribute in span.attributes:
        if attribute.key == key:
            return attribute.value.string_value
    return None


def sdk_client_span(tracestate=None, sampled=True):
    """A CLIENT span started by the SDK's tracer (parent-based sampling) as the child of a
    remote parent that carries `tracestate` and `sampled`; returns `(span, context with the
    span and baggage k=v)`."""
    parent = SpanContext(
        trace_id=_IDS.generate_trace_id(),
        span_id=_IDS.generate_span_id(),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
        trace_state=TraceState(list((tracestate or {}).items())),
    )
    parent_context = trace.set_span_in_context(NonRecordingSpan(parent))
    span = _TRACER.start_span("call", context=parent_context, kind=SpanKind.CLIENT)
    context = baggage.set_baggage("k", "v", trace.set_span_in_context(span))
    return span, context


def inject_client_context(format_name, sampled=True):
    """The SDK's client span context and the headers its `format_name` propagator writes."""
    span, context = sdk_client_span(tracestate={"vendor": "value"}, sampled=sampled)
    span.end()
    carrier = {}
    CLIENT_FORMATS[format_name].inject(carrier, context=context)
    sent = span.get_span_context()
    assert sent.is_valid and sent.trace_flags.sampled == sampled
    if format_name == "w3c":
        assert carrier.get("tracestate") == "vendor=value", carrier
        assert carrier.get("baggage") == "k=v", carrier
    return sent, carrier


def assert_forwarded_context(headers, span, sent_format=None, caller=None):
    """What the next hop received names `span` (the sidecar's span, from the sink) as its
    parent in every trace format it got, read with the SDK's propagators; returns the W3C
    context. `caller` is the span id (bytes) of the sidecar span's own parent, if any."""
    traceparent = one(headers, "traceparent")
    assert VALID_TRACEPARENT.match(traceparent), traceparent
    w3c = extracted(TRACECONTEXT, headers)
    assert w3c.is_valid, f"the SDK cannot read traceparent {traceparent!r}"
    assert trace_bytes(w3c.trace_id) == span.trace_id, (traceparent, span.trace_id.hex())
    assert span_bytes(w3c.span_id) == span.span_id, (traceparent, span.span_id.hex())
    assert w3c.trace_flags.sampled, traceparent

    # The sidecar's default inject set has B3 multi; B3 single is written when it came in.
    b3 = b3_contexts(headers)
    assert "b3multi" in b3, f"no B3 multi headers forwarded: {headers}"
    if sent_format == "b3single":
        assert "b3single" in b3, f"B3 single came in but was not forwarded: {headers}"
    for name, context in b3.items():
        assert context.is_valid, f"the SDK cannot read the forwarded {name}: {headers}"
        assert identity(context) == identity(w3c), (name, headers)
    for name in (*B3_MULTI_HEADERS, B3_MULTI_PARENT, "b3"):
        if name in headers:
            one(headers, name)
    if B3_MULTI_PARENT in headers:
        assert caller is not None, f"a root span forwarded {B3_MULTI_PARENT}: {headers}"
        assert one(headers, B3_MULTI_PARENT) == caller.hex(), headers
    return w3c


def assert_request_id(headers, span):
    """`x-request-id` was forwarded once, as a UUID, and tagged on the sidecar's span. (Like
    Envoy, the sidecar packs its trace decision into the UUID's version digit: 4, 9, a, b.)"""
    request_id = one(headers, "x-request-id")
    assert str(uuid.UUID(request_id)) == request_id.lower(), request_id
    assert request_id[14] in "49ab", request_id
    assert string_attribute(span, "guid:x-request-id") == request_id


# === 1. the sidecar writes, the SDK reads ===


def assert_sdk_context_continued(mesh, sent, format_name, headers, kind):
    """The sidecar's span of `kind` at the sink is a child of the SDK span `sent` (injected in
    `format_name`), and `headers`, as the next hop received them, name that span as the parent
    in the same trace; W3C tracestate and baggage arrive intact."""
    span = wait_for_span(mesh.sink, sent.trace_id, kind)
    assert span.parent_span_id == span_bytes(sent.span_id), (
        f"span parent {span.parent_span_id.hex()}, SDK span {sent.span_id:016x}"
    )
    assert span.span_id != span_bytes(sent.span_id)
    next_parent = assert_forwarded_context(
        headers, span, sent_format=format_name, caller=span_bytes(sent.span_id)
    )
    assert next_parent.trace_id == sent.trace_id
    assert_request_id(headers, span)

    if format_name == "w3c":
        assert one(headers, "tracestate") == "vendor=value", headers
        assert next_parent.trace_state.get("vendor") == "value"
        assert one(headers, "baggage") == "k=v", headers
        assert dict(baggage.get_all(BAGGAGE.extract(headers))) == {"k": "v"}


def test_sdk_reads_the_context_the_sidecar_starts(mesh):
    """A request with no trace context: the app behind the inbound listener reads, with the
    SDK's TraceContext propagator, a valid sampled context whose trace id is the SERVER span's
    (at the sink) and whose parent span id is the SERVER span's id; the B3 multi headers the
    sidecar also injects decode with the SDK's B3 propagator to the same context; the root
    SERVER span has no parent; `x-request-id` is forwarded (a UUID, tagged on the span)."""
    path = unique_path("no-context")
    call_inbound(mesh, path, headers={})
    headers = mesh.app.received(path)

    app_parent = extracted(TRACECONTEXT, headers)
    assert app_parent.is_valid, f"no valid traceparent reached the app: {headers}"
    server = wait_for_span(mesh.sink, app_parent.trace_id, SERVER)
    assert server.parent_span_id == b"", "a request without context must start a root span"
    assert_forwarded_context(headers, server)
    assert_request_id(headers, server)
    assert "tracestate" not in headers and "baggage" not in headers, headers


# === 2. the SDK writes, the sidecar reads ===


@pytest.mark.parametrize("format_name", list(CLIENT_FORMATS))
def test_sidecar_continues_the_context_the_sdk_injects(mesh, format_name):
    """A caller's SDK CLIENT span injected with the SDK's propagator (W3C traceparent with
    tracestate `vendor=value` and baggage `k=v`; B3 single; B3 multi): the sidecar's SERVER
    span at the sink continues the SDK's trace with the SDK span as parent, and the app reads,
    with the SDK's propagators, a context of the same trace whose parent is the SERVER span
    (in W3C and in every B3 form forwarded); W3C tracestate and baggage reach the app intact."""
    sent, carrier = inject_client_context(format_name)
    path = unique_path(f"sdk-{format_name}")
    call_inbound(mesh, path, headers=carrier)
    assert_sdk_context_continued(mesh, sent, format_name, mesh.app.received(path), SERVER)



def test_sidecar_keeps_the_not_sampled_decision_the_sdk_injects(mesh):
    """An SDK CLIENT span that is not sampled, injected as W3C, B3 single and B3 multi: the
    sidecar reads the decision (its 100 % sampling does not override the parent's flag), so
    it exports no span of those traces, and the app reads, with the SDK's propagators, a
    context that continues the SDK's trace, not sampled, in every trace format forwarded."""
    unsampled = {}
    for format_name in CLIENT_FORMATS:
        sent, carrier = inject_client_context(format_name, sampled=False)
        path = unique_path(f"unsampled-{format_name}")
        call_inbound(mesh, path, headers=carrier)
        headers = mesh.app.received(path)

        app_parent = extracted(TRACECONTEXT, headers)
        assert app_parent.is_valid, (format_name, carrier, headers)
        assert app_parent.trace_id == sent.trace_id, (format_name, carrier, headers)
        assert app_parent.span_id != sent.span_id, (format_name, carrier, headers)
        assert not app_parent.trace_flags.sampled, (format_name, carrier, headers)
        b3 = b3_contexts(headers)
        assert "b3multi" in b3, f"no B3 multi headers forwarded: {headers}"
        for name, context in b3.items():
            assert identity(context) == identity(app_parent), (format_name, name, headers)
        unsampled[format_name] = sent.trace_id

    # A sampled request after them: once its span is in, theirs would be too.
    marker, carrier = inject_client_context("w3c")
    call_inbound(mesh, unique_path("unsampled-marker"), headers=carrier)
    wait_for_span(mesh.sink, marker.trace_id, SERVER)
    exported = {span.trace_id for _, _, span in mesh.sink.spans()}
    wrongly = [name for name, trace_id in unsampled.items() if trace_bytes(trace_id) in exported]
    assert not wrongly, f"spans exported for not-sampled SDK contexts sent as {wrongly}"

# === 3. an invalid traceparent restarts the trace ===

INVALID_TRACEPARENTS = {
    "uppercase-hex": lambda t, s: f"00-{t.upper()}-{s.upper()}-01",
    "version-ff": lambda t, s: f"ff-{t}-{s}-01",
    "zero-trace-id": lambda t, s: f"00-{'0' * 32}-{s}-01",
    "zero-span-id": lambda t, s: f"00-{t}-{'0' * 16}-01",
    "version-00-with-suffix": lambda t, s: f"00-{t}-{s}-01-extra",
}


@pytest.mark.parametrize("case", list(INVALID_TRACEPARENTS))
def test_invalid_traceparent_restarts_the_trace(mesh, case):
    """A traceparent that the W3C specification (and the SDK's own extractor) rejects:
    the sidecar starts a new trace (a new trace id at the sink, a SERVER span with no parent,
    no span in the invalid id's trace) and the app reads a valid, new traceparent whose parent
    is that SERVER span."""
    bad_trace, bad_span = f"{_IDS.generate_trace_id():032x}", f"{_IDS.generate_span_id():016x}"
    traceparent = INVALID_TRACEPARENTS[case](bad_trace, bad_span)
    assert not extracted(TRACECONTEXT, {"traceparent": traceparent}).is_valid, (
        f"the SDK accepts {traceparent!r}: not an invalid case"
    )

    path = unique_path(f"invalid-{case}")
    call_inbound(mesh, path, headers={"traceparent": traceparent})
    headers = mesh.app.received(path)

    app_parent = extracted(TRACECONTEXT, headers)
    assert app_parent.is_valid, (
        f"sent traceparent {traceparent!r}; the app got {headers.get('traceparent')}"
    )
    assert f"{app_parent.trace_id:032x}" != bad_trace, (
        f"sent traceparent {traceparent!r}; the app got {headers.get('traceparent')}: "
        "the invalid trace was continued"
    )
    server = wait_for_span(mesh.sink, app_parent.trace_id, SERVER)
    assert server.parent_span_id == b"", (
        f"sent traceparent {traceparent!r}; SERVER span parent {server.parent_span_id.hex()}"
    )
    assert_forwarded_context(headers, server)
    continued = [
        span for _, _, span in mesh.sink.spans() if span.trace_id.hex() == bad_trace
    ]
    assert not continued, f"spans exported in the invalid trace {bad_trace}: {continued}"


# === 4. outbound: the app's SDK context through the outbound listener ===


@pytest.mark.parametrize("format_name", list(CLIENT_FORMATS))
def test_outbound_call_continues_the_app_context(mesh, format_name):
    """The app calls a downstream server through the outbound listener as an `HTTP_PROXY`
    (absolute-form request), with its SDK span context injected by the SDK's propagator: the
    sidecar's CLIENT span at the sink is a child of the SDK span, and the downstream server
    reads, with the SDK's propagators, that CLIENT span as its parent in every trace format it
    received; W3C tracestate and baggage reach it intact."""
    sent, carrier = inject_client_context(format_name)
    path = unique_path(f"outbound-{format_name}")
    call_outbound(mesh, path, headers=carrier)
    assert_sdk_context_continued(mesh, sent, format_name, mesh.downstream.received(path), CLIENT)
