"""How the otlp exporter treats the destination's gRPC status: a permanent error drops the
data after one attempt and counts it as failed; a retryable one is retried until it succeeds."""

import grpc

from e2e_util import eventually, post_traces, span_ids, trace_request

CONFIG = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlp:
    endpoint: ${env:SINK_ENDPOINT}
    tls:
      insecure: true
    retry_on_failure:
      enabled: true
      initial_interval: 100ms
      max_interval: 200ms
      max_elapsed_time: 60s
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"""


def start(pool):
    sink = pool.sink()
    collector = pool.collector(CONFIG, env={"SINK_ENDPOINT": sink.endpoint})
    return collector, sink


def send(collector, spans=2):
    request = trace_request(span_count=spans)
    response = post_traces(collector.http_endpoint, request)
    assert response.status_code == 200, response.text
    return span_ids(request)


def test_permanent_error_is_dropped_after_one_attempt(pool):
    """INVALID_ARGUMENT from the destination is permanent: one attempt, no retry, the spans are
    counted in otelcol_exporter_send_failed_spans_total and not as sent."""
    collector, sink = start(pool)
    sink.fail_with(grpc.StatusCode.INVALID_ARGUMENT, "schema rejected")
    send(collector, spans=2)

    eventually(
        lambda: collector.metric("otelcol_exporter_send_failed_spans_total", exporter="otlp") == 2
    )
    assert sink.attempts == 1, f"a permanent error was retried ({sink.attempts} attempts)"
    assert collector.metric("otelcol_exporter_sent_spans_total", exporter="otlp") == 0
    assert collector.alive()


def test_unavailable_is_retried_until_delivered(pool):
    """UNAVAILABLE is retryable: the exporter keeps trying and, once the destination accepts,
    the spans arrive once and count as sent, not as failed."""
    collector, sink = start(pool)
    sink.fail_with(grpc.StatusCode.UNAVAILABLE, "try later")
    sent = send(collector, spans=3)

    eventually(lambda: sink.attempts >= 3, message="the exporter did not retry")
    sink.answer_ok()
    received = sink.wait_for_span_ids(sent)
    assert sorted(received) == sorted(sent)
    eventually(lambda: collector.metric("otelcol_exporter_sent_spans_total", exporter="otlp") == 3)
    assert collector.metric("otelcol_exporter_send_failed_spans_total", exporter="otlp") == 0
