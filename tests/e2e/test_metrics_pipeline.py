"""Metrics flow end to end: OpenTelemetry SDK → OTLP/gRPC receiver → batch → OTLP/gRPC exporter
→ a real OTLP server, with names, data points and attributes intact and counted as metric points.
"""

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from e2e_util import eventually

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {sink}
    tls:
      insecure: true
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"""


def test_sdk_metrics_arrive_with_their_points_and_are_counted(pool):
    """A counter and a histogram recorded by the SDK reach the destination unchanged."""
    sink = pool.sink()
    collector = pool.collector(CONFIG.format(sink=sink.endpoint))
    exporter = OTLPMetricExporter(endpoint=collector.endpoint("grpc"), insecure=True)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": "reviews.default"})
    )
    meter = provider.get_meter("e2e")
    requests = meter.create_counter("istio_requests", unit="1")
    latency = meter.create_histogram("istio_request_duration", unit="ms")
    requests.add(3, {"response_code": "200"})
    requests.add(1, {"response_code": "503"})
    latency.record(12.5, {"response_code": "200"})
    provider.force_flush()

    def metrics_by_name():
        found = {}
        for request, _ in sink.received_metrics():
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        found[metric.name] = (resource_metrics.resource, metric)
        return found

    found = eventually(lambda: metrics_by_name() if len(metrics_by_name()) == 2 else None)
    resource, counter = found["istio_requests"]
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == (
        "reviews.default"
    )
    points = {p.attributes[0].value.string_value: p.as_int for p in counter.sum.data_points}
    assert points == {"200": 3, "503": 1}
    _, histogram = found["istio_request_duration"]
    assert histogram.histogram.data_points[0].sum == 12.5
    assert histogram.histogram.data_points[0].count == 1
    accepted = 'otelcol_receiver_accepted_metric_points_total{receiver="otlp",transport="grpc"}'
    assert eventually(lambda: collector.metrics().get(accepted) == 3)
    sent = 'otelcol_exporter_sent_metric_points_total{exporter="otlp"}'
    assert eventually(lambda: collector.metrics().get(sent) == 3)
    provider.shutdown()
