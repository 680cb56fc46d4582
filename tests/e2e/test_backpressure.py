"""Back-pressure and durability of the otlp exporter: a destination that is down, a destination
that never answers (queue full), and a graceful shutdown that drains what is in flight."""

import grpc
from google.rpc import status_pb2

from e2e_util import (
    PROTOBUF,
    eventually,
    free_port,
    grpc_export_traces,
    post_traces,
    span_ids,
    trace_request,
)

PIPELINE = """
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{processors}]
      exporters: [otlp]
"""

RECEIVERS = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
"""


def config(exporter, processors="", extra=""):
    """A traces pipeline otlp → [processors] → otlp exporter (`exporter` is its YAML body)."""
    return (
        RECEIVERS
        + extra
        + "exporters:\n  otlp:\n"
        + exporter
        + PIPELINE.format(processors=processors)
    )


def send_requests(collector, count, spans_each):
    """POSTs `count` OTLP/HTTP requests; all must be accepted. Returns every span id sent."""
    sent = set()
    for _ in range(count):
        request = trace_request(span_count=spans_each)
        response = post_traces(collector.http_endpoint, request)
        assert response.status_code == 200, (response.status_code, response.text)
        sent |= span_ids(request)
    return sent


def test_destination_down_then_up_delivers_everything(pool):
    """With the destination down, data is accepted, queued and retried; once the destination
    comes up on its address every span arrives exactly once and is counted as sent."""
    sink = pool.sink(port=free_port(), start=False)
    exporter = f"""    endpoint: {sink.endpoint}
    tls:
      insecure: true
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 1s
      max_elapsed_time: 60s
"""
    collector = pool.collector(config(exporter))
    sent = send_requests(collector, count=5, spans_each=4)
    eventually(lambda: collector.metric("otelcol_receiver_accepted_spans_total") == len(sent))
    assert collector.metric("otelcol_exporter_sent_spans_total", exporter="otlp") == 0

    sink.start()
    received = sink.wait_for_span_ids(sent, timeout=30)
    assert sorted(received) == sorted(sent), "spans were duplicated or foreign spans arrived"
    eventually(
        lambda: collector.metric("otelcol_exporter_sent_spans_total", exporter="otlp") == len(sent)
    )
    assert collector.metric("otelcol_exporter_queue_size", exporter="otlp") == 0


def stalled_collector(pool):
    """A collector whose only exporter has one consumer and room for two batches, sending to a
    sink that never answers."""
    sink = pool.sink()
    sink.stall()
    exporter = f"""    endpoint: {sink.endpoint}
    tls:
      insecure: true
    timeout: 30s
    sending_queue:
      enabled: true
      num_consumers: 1
      queue_size: 2
"""
    collector = pool.collector(config(exporter), args=["--shutdown-timeout", "5"])
    return collector, sink


def first_http_refusal(collector, limit=20):
    """POSTs one small request at a time until one is refused; returns (accepted ids, refusal)."""
    accepted = set()
    for _ in range(limit):
        request = trace_request(span_count=2)
        response = post_traces(collector.http_endpoint, request)
        if response.status_code != 200:
            return accepted, response
        accepted |= span_ids(request)
    raise AssertionError(f"{limit} requests were all accepted by a queue of 2")


def test_full_queue_refuses_with_retry_after(pool):
    """When the sending queue is full the receivers refuse instead of buffering without bound:
    HTTP 429/503 with Retry-After and a Status body, gRPC RESOURCE_EXHAUSTED/UNAVAILABLE, and the
    refusals are counted. Once the destination answers again everything accepted is delivered."""
    collector, sink = stalled_collector(pool)
    accepted, refusal = first_http_refusal(collector)

    assert refusal.status_code in (429, 503), (refusal.status_code, refusal.text)
    assert refusal.headers.get("Retry-After", "").isdigit(), refusal.headers
    assert refusal.headers.get("Content-Type", "").startswith(PROTOBUF), refusal.headers
    status = status_pb2.Status.FromString(refusal.content)
    assert status.code in (
        grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
        grpc.StatusCode.UNAVAILABLE.value[0],
    )

    code, details = grpc_export_traces(collector.grpc_endpoint, trace_request(span_count=2))
    assert code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE), (
        code,
        details,
    )

    assert collector.metric("otelcol_exporter_enqueue_failed_spans_total", exporter="otlp") > 0
    assert collector.metric("otelcol_receiver_refused_spans_total", receiver="otlp") > 0
    assert collector.metric("otelcol_exporter_queue_capacity", exporter="otlp") == 2

    sink.release()
    sink.wait_for_span_ids(accepted, timeout=30)


def test_sigterm_drains_the_batch_processor(pool):
    """Spans waiting in a batch processor (timeout 10s) when SIGTERM arrives are all exported
    before the process exits 0."""
    sink = pool.sink()
    exporter = f"""    endpoint: {sink.endpoint}
    tls:
      insecure: true
"""
    batch = """
processors:
  batch:
    timeout: 10s
"""
    collector = pool.collector(config(exporter, processors="batch", extra=batch))
    sent = send_requests(collector, count=3, spans_each=10)
    eventually(lambda: collector.metric("otelcol_receiver_accepted_spans_total") == len(sent))
    assert not sink.span_ids(), "precondition: the batch processor should still hold the spans"

    collector.stop()

    assert sorted(sink.span_ids()) == sorted(sent), "spans were lost (or duplicated) at shutdown"
