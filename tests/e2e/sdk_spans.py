"""Spans as an instrumented service makes them, with the OpenTelemetry Python SDK: shared by the
tests that check what the collector does with real SDK output."""

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def make_provider(exporter, service):
    """A TracerProvider exporting to `exporter` and to memory (to know what was produced)."""
    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "mesh",
            "k8s.pod.replicas": 3,
            "mesh.sample_ratio": 0.25,
            "mesh.sidecar": True,
            "mesh.zones": ("eu-1a", "eu-1b"),
        }
    )
    provider = TracerProvider(resource=resource)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, memory


def produce_spans(provider):
    """A linked root span, then a SERVER parent with events and a CLIENT child linking to it.

    Every attribute type appears: string, int, float, bool, string array, and int/float/bool
    arrays."""
    tracer = provider.get_tracer("e2e.seed", "1.2.3")
    with tracer.start_as_current_span("background-job", kind=SpanKind.INTERNAL) as linked:
        linked_context = linked.get_span_context()
    attributes = {
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "mesh.latency_ratio": 0.75,
        "mesh.retried": False,
        "mesh.hops": ["ingress", "productpage", "reviews"],
        "mesh.ports": [9080, 15001],
        "mesh.weights": [0.5, 1.5],
        "mesh.flags": [True, False],
    }
    with tracer.start_as_current_span(
        "GET /productpage", kind=SpanKind.SERVER, attributes=attributes
    ) as parent:
        parent.add_event(
            "cache.miss", {"cache.key": "user:42", "attempt": 2, "backoff": 0.1, "warm": True}
        )
        parent.add_event("no-attributes")
        link = Link(linked_context, {"link.reason": "triggered-by", "link.weight": 7})
        with tracer.start_as_current_span(
            "GET reviews:9080", kind=SpanKind.CLIENT, links=[link]
        ) as child:
            child.set_attribute("peer.service", "reviews")
            child.set_status(Status(StatusCode.ERROR, "upstream reset"))
    assert provider.force_flush(10_000), "the SDK could not flush its spans"
    return linked, parent, child
