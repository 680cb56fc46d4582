//! [`Batch`]: the owned unit of telemetry that moves down a pipeline.
//!
//! A batch is either *encoded* (the protobuf bytes of one or more `Export*ServiceRequest`s, kept as
//! received) or *decoded* (the generated message, for components that read or change telemetry).
//! Protobuf messages concatenate: two encoded requests appended decode as one request holding both
//! resource lists, so merging encoded batches is appending byte chunks and exporting them is
//! writing those chunks out. A component that needs objects asks for them and the batch decodes
//! once; the decision lives here and nowhere else.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::proto::metrics::v1::{Metric, metric};
use crate::signal::Signal;
use crate::wire::{self, WireError};
use crate::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest};

/// Telemetry of one signal, owned by whoever holds it.
#[derive(Debug, Clone)]
pub struct Batch {
    signal: Signal,
    /// Spans, log records or metric data points, always kept equal to what `repr` holds.
    items: u64,
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// Validated protobuf bytes; each chunk is a whole `Export*ServiceRequest` encoding.
    Encoded(Vec<Bytes>),
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// A batch could not be turned into the form a component asked for.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("protobuf decode failed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("expected {expected} but the batch holds {actual}")]
    WrongSignal { expected: Signal, actual: Signal },
}

// === impl Batch ===

impl Batch {
    /// An empty batch of `signal`.
    pub fn empty(signal: Signal) -> Batch {
        Batch { signal, items: 0, repr: Repr::Encoded(Vec::new()) }
    }

    /// Takes the protobuf encoding of an `Export*ServiceRequest` after checking it against the
    /// schema and counting its items, without decoding it.
    pub fn from_wire(signal: Signal, bytes: Bytes) -> Result<Batch, WireError> {
        let scan = wire::scan(signal, &bytes)?;
        let chunks = if bytes.is_empty() { Vec::new() } else { vec![bytes] };
        Ok(Batch { signal, items: scan.items, repr: Repr::Encoded(chunks) })
    }

    /// Takes the protobuf encoding of an `Export*ServiceRequest` holding `items` items that this
    /// process encoded itself, without scanning it: checking bytes prost just wrote, on every
    /// batch, cost a sidecar about a tenth of its user-space instructions. Debug builds still
    /// check, so tests catch a wrong encoder or count.
    pub fn from_trusted_wire(signal: Signal, bytes: Bytes, items: u64) -> Batch {
        debug_assert_eq!(wire::scan(signal, &bytes).map(|scan| scan.items).ok(), Some(items));
        let chunks = if bytes.is_empty() { Vec::new() } else { vec![bytes] };
        Batch { signal, items, repr: Repr::Encoded(chunks) }
    }

    /// Wraps a decoded trace request.
    pub fn from_traces(request: ExportTraceServiceRequest) -> Batch {
        let items = count_spans(&request);
        Batch { signal: Signal::Traces, items, repr: Repr::Traces(request) }
    }

    /// Wraps a decoded logs request.
    pub fn from_logs(request: ExportLogsServiceRequest) -> Batch {
        let items = count_log_records(&request);
        Batch { signal: Signal::Logs, items, repr: Repr::Logs(request) }
    }

    /// Wraps a decoded metrics request.
    pub fn from_metrics(request: ExportMetricsServiceRequest) -> Batch {
        let items = count_metric_points(&request);
        Batch { signal: Signal::Metrics, items, repr: Repr::Metrics(request) }
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// Spans, log records or metric data points in the batch.
    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0 && !self.has_content()
    }

    /// Whether the encoding would be non-empty, without measuring it: an `Export*ServiceRequest`
    /// has no field but its resource list, so it encodes to nothing exactly when that is empty.
    fn has_content(&self) -> bool {
        match &self.repr {
            Repr::Encoded(chunks) => chunks.iter().any(|chunk| !chunk.is_empty()),
            Repr::Traces(request) => !request.resource_spans.is_empty(),
            Repr::Logs(request) => !request.resource_logs.is_empty(),
            Repr::Metrics(request) => !request.resource_metrics.is_empty(),
        }
    }

    /// True while the batch is still in wire form.
    pub fn is_encoded(&self) -> bool {
        matches!(self.repr, Repr::Encoded(_))
    }

    /// The batch's wire form, while it has one: byte chunks whose concatenation is the whole
    /// `Export*ServiceRequest`, for writing out without copying.
    pub fn wire_chunks(&self) -> Option<&[Bytes]> {
        match &self.repr {
            Repr::Encoded(chunks) => Some(chunks),
            _ => None,
        }
    }

    /// Moves `other`'s telemetry to the end of this batch. Wire form wins: appending costs a
    /// chunk push when either side is encoded, and a decoded side is encoded once.
    ///
    /// Both batches must carry the same signal; pipelines are typed by signal, so a mismatch is
    /// a programming error.
    pub fn append(&mut self, other: Batch) {
        debug_assert_eq!(self.signal, other.signal, "appending batches of different signals");
        self.items += other.items;
        if other.is_empty() {
            return;
        }
        let repr = std::mem::replace(&mut self.repr, Repr::Encoded(Vec::new()));
        self.repr = match (repr, other.repr) {
            (Repr::Traces(mut a), Repr::Traces(b)) => {
                a.resource_spans.extend(b.resource_spans);
                Repr::Traces(a)
            }
            (Repr::Logs(mut a), Repr::Logs(b)) => {
                a.resource_logs.extend(b.resource_logs);
                Repr::Logs(a)
            }
            (Repr::Metrics(mut a), Repr::Metrics(b)) => {
                a.resource_metrics.extend(b.resource_metrics);
                Repr::Metrics(a)
            }
            (mine, theirs) => {
                let mut chunks = into_chunks(mine);
                chunks.extend(into_chunks(theirs));
                Repr::Encoded(chunks)
            }
        };
    }

    /// The length of the batch's protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        match &self.repr {
            Repr::Encoded(chunks) => chunks.iter().map(Bytes::len).sum(),
            Repr::Traces(request) => request.encoded_len(),
            Repr::Logs(request) => request.encoded_len(),
            Repr::Metrics(request) => request.encoded_len(),
        }
    }

    /// Writes the protobuf encoding of the whole batch as one `Export*ServiceRequest`.
    pub fn encode_to(&self, buf: &mut impl BufMut) {
        match &self.repr {
            Repr::Encoded(chunks) => {
                for chunk in chunks {
                    buf.put_slice(chunk);
                }
            }
            // `encode_raw` cannot fail; `encode` only fails for lack of capacity, which a
            // growable `BufMut` never lacks.
            Repr::Traces(request) => request.encode_raw(buf),
            Repr::Logs(request) => request.encode_raw(buf),
            Repr::Metrics(request) => request.encode_raw(buf),
        }
    }

    /// The protobuf encoding as one buffer; free when the batch is a single received request.
    pub fn to_bytes(&self) -> Bytes {
        if let Repr::Encoded(chunks) = &self.repr
            && chunks.len() == 1
        {
            return chunks[0].clone();
        }
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_to(&mut buf);
        buf.freeze()
    }

    /// The trace request, if the batch holds it decoded.
    pub fn as_traces(&self) -> Option<&ExportTraceServiceRequest> {
        match &self.repr {
            Repr::Traces(request) => Some(request),
            _ => None,
        }
    }

    /// The logs request, if the batch holds it decoded.
    pub fn as_logs(&self) -> Option<&ExportLogsServiceRequest> {
        match &self.repr {
            Repr::Logs(request) => Some(request),
            _ => None,
        }
    }

    /// The metrics request, if the batch holds it decoded.
    pub fn as_metrics(&self) -> Option<&ExportMetricsServiceRequest> {
        match &self.repr {
            Repr::Metrics(request) => Some(request),
            _ => None,
        }
    }

    /// Decodes (if needed) and hands out the trace request.
    pub fn into_traces(self) -> Result<ExportTraceServiceRequest, DecodeError> {
        self.expect_signal(Signal::Traces)?;
        match self.repr {
            Repr::Traces(request) => Ok(request),
            Repr::Encoded(chunks) => Ok(decode_chunks(&chunks)?),
            _ => Err(DecodeError::WrongSignal { expected: Signal::Traces, actual: self.signal }),
        }
    }

    /// Decodes (if needed) and hands out the logs request.
    pub fn into_logs(self) -> Result<ExportLogsServiceRequest, DecodeError> {
        self.expect_signal(Signal::Logs)?;
        match self.repr {
            Repr::Logs(request) => Ok(request),
            Repr::Encoded(chunks) => Ok(decode_chunks(&chunks)?),
            _ => Err(DecodeError::WrongSignal { expected: Signal::Logs, actual: self.signal }),
        }
    }

    /// Decodes (if needed) and hands out the metrics request.
    pub fn into_metrics(self) -> Result<ExportMetricsServiceRequest, DecodeError> {
        self.expect_signal(Signal::Metrics)?;
        match self.repr {
            Repr::Metrics(request) => Ok(request),
            Repr::Encoded(chunks) => Ok(decode_chunks(&chunks)?),
            _ => Err(DecodeError::WrongSignal { expected: Signal::Metrics, actual: self.signal }),
        }
    }

    /// Splits the batch into batches of at most `max_items` items each, in order. Splitting
    /// needs objects, so an encoded batch is decoded; a batch already small enough is returned
    /// untouched. Metrics split between metrics, never inside one, so a single metric with more
    /// points than `max_items` travels whole.
    pub fn split(self, max_items: u64) -> Result<Vec<Batch>, DecodeError> {
        if max_items == 0 || self.items <= max_items {
            return Ok(vec![self]);
        }
        Ok(match self.signal {
            Signal::Traces => split_traces(self.into_traces()?, max_items)
                .into_iter()
                .map(Batch::from_traces)
                .collect(),
            Signal::Logs => {
                split_logs(self.into_logs()?, max_items).into_iter().map(Batch::from_logs).collect()
            }
            Signal::Metrics => split_metrics(self.into_metrics()?, max_items)
                .into_iter()
                .map(Batch::from_metrics)
                .collect(),
        })
    }

    fn expect_signal(&self, expected: Signal) -> Result<(), DecodeError> {
        if self.signal == expected {
            Ok(())
        } else {
            Err(DecodeError::WrongSignal { expected, actual: self.signal })
        }
    }
}

fn into_chunks(repr: Repr) -> Vec<Bytes> {
    fn encoded(message: &impl Message) -> Vec<Bytes> {
        vec![Bytes::from(message.encode_to_vec())]
    }
    match repr {
        Repr::Encoded(chunks) => chunks,
        Repr::Traces(request) => encoded(&request),
        Repr::Logs(request) => encoded(&request),
        Repr::Metrics(request) => encoded(&request),
    }
}

fn decode_chunks<M: Message + Default>(chunks: &[Bytes]) -> Result<M, prost::DecodeError> {
    // Merging each chunk into one message is what decoding their concatenation would do, without
    // first copying them into one buffer.
    let mut message = M::default();
    for chunk in chunks {
        message.merge(chunk.clone())?;
    }
    Ok(message)
}

// === counting ===

/// Spans in a decoded trace request.
pub fn count_spans(request: &ExportTraceServiceRequest) -> u64 {
    let mut total = 0;
    for resource in &request.resource_spans {
        for scope in &resource.scope_spans {
            total += scope.spans.len() as u64;
        }
    }
    total
}

/// Log records in a decoded logs request.
pub fn count_log_records(request: &ExportLogsServiceRequest) -> u64 {
    let mut total = 0;
    for resource in &request.resource_logs {
        for scope in &resource.scope_logs {
            total += scope.log_records.len() as u64;
        }
    }
    total
}

/// Data points in a decoded metrics request, as the collector counts them.
pub fn count_metric_points(request: &ExportMetricsServiceRequest) -> u64 {
    let mut total = 0;
    for resource in &request.resource_metrics {
        for scope in &resource.scope_metrics {
            for metric in &scope.metrics {
                total += metric_points(metric);
            }
        }
    }
    total
}

fn metric_points(metric: &Metric) -> u64 {
    let points = match &metric.data {
        Some(metric::Data::Gauge(data)) => data.data_points.len(),
        Some(metric::Data::Sum(data)) => data.data_points.len(),
        Some(metric::Data::Histogram(data)) => data.data_points.len(),
        Some(metric::Data::ExponentialHistogram(data)) => data.data_points.len(),
        Some(metric::Data::Summary(data)) => data.data_points.len(),
        None => 0,
    };
    points as u64
}

// === splitting ===

/// Splits a resource → scope → item tree into pieces of at most `max` weight, copying resource
/// and scope headers into every piece that holds some of their items.
macro_rules! split_tree {
    ($name:ident, $request:ty, $resources:ident, $scopes:ident, $items:ident, $weight:expr) => {
        fn $name(request: $request, max: u64) -> Vec<$request> {
            let weight = $weight;
            let mut pieces = Vec::new();
            let mut piece = <$request>::default();
            let mut filled = 0u64;
            for mut resource in request.$resources {
                let scopes = std::mem::take(&mut resource.$scopes);
                let mut resource_in_piece = false;
                for mut scope in scopes {
                    let items = std::mem::take(&mut scope.$items);
                    let mut scope_in_piece = false;
                    for item in items {
                        let item_weight = weight(&item);
                        if filled > 0 && filled + item_weight > max {
                            pieces.push(std::mem::take(&mut piece));
                            filled = 0;
                            resource_in_piece = false;
                            scope_in_piece = false;
                        }
                        if !resource_in_piece {
                            let mut header = resource.clone();
                            header.$scopes.clear();
                            piece.$resources.push(header);
                            resource_in_piece = true;
                        }
                        let current_resource = piece.$resources.last_mut();
                        let Some(current_resource) = current_resource else { continue };
                        if !scope_in_piece {
                            let mut header = scope.clone();
                            header.$items.clear();
                            current_resource.$scopes.push(header);
                            scope_in_piece = true;
                        }
                        if let Some(current_scope) = current_resource.$scopes.last_mut() {
                            current_scope.$items.push(item);
                            filled += item_weight;
                        }
                    }
                }
            }
            if !piece.$resources.is_empty() {
                pieces.push(piece);
            }
            pieces
        }
    };
}

split_tree!(split_traces, ExportTraceServiceRequest, resource_spans, scope_spans, spans, |_: &_| 1);
split_tree!(
    split_logs,
    ExportLogsServiceRequest,
    resource_logs,
    scope_logs,
    log_records,
    |_: &_| 1
);
split_tree!(
    split_metrics,
    ExportMetricsServiceRequest,
    resource_metrics,
    scope_metrics,
    metrics,
    metric_points
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn encoded_batches_concatenate_into_one_request() {
        let a = fixtures::sidecar_traces(3, 1);
        let b = fixtures::sidecar_traces(5, 2);
        let mut batch = Batch::from_wire(Signal::Traces, a.encode_to_vec().into()).unwrap();
        batch.append(Batch::from_wire(Signal::Traces, b.encode_to_vec().into()).unwrap());
        assert!(batch.is_encoded());
        assert_eq!(batch.items(), 8);
        let merged = batch.into_traces().unwrap();
        assert_eq!(merged.resource_spans.len(), a.resource_spans.len() + b.resource_spans.len());
        assert_eq!(merged.resource_spans[0], a.resource_spans[0]);
        assert_eq!(merged.resource_spans.last(), b.resource_spans.last());
    }

    #[test]
    fn trusted_wire_batches_are_taken_as_given() {
        let request = fixtures::sidecar_traces(6, 2);
        let batch = Batch::from_trusted_wire(Signal::Traces, request.encode_to_vec().into(), 6);
        assert!(batch.is_encoded());
        assert_eq!(batch.items(), 6);
        assert_eq!(batch.into_traces().unwrap(), request);
    }

    #[test]
    #[should_panic]
    #[cfg(debug_assertions)]
    fn debug_builds_check_a_trusted_count() {
        let request = fixtures::sidecar_traces(6, 2);
        let _ = Batch::from_trusted_wire(Signal::Traces, request.encode_to_vec().into(), 5);
    }

    #[test]
    fn mixed_append_keeps_every_item_and_wire_form() {
        let a = fixtures::sidecar_traces(4, 1);
        let mut batch = Batch::from_traces(a.clone());
        batch.append(Batch::from_wire(Signal::Traces, a.encode_to_vec().into()).unwrap());
        assert!(batch.is_encoded());
        assert_eq!(batch.items(), 8);
        assert_eq!(count_spans(&batch.into_traces().unwrap()), 8);
    }

    #[test]
    fn split_respects_the_maximum_and_keeps_order_and_headers() {
        let request = fixtures::sidecar_traces(10, 3);
        let original: Vec<_> = request
            .resource_spans
            .iter()
            .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter().cloned()))
            .collect();
        let pieces = Batch::from_traces(request.clone()).split(4).unwrap();
        assert!(pieces.iter().all(|p| p.items() <= 4 && p.items() > 0));
        let mut spans = Vec::new();
        for piece in pieces {
            for resource in piece.into_traces().unwrap().resource_spans {
                assert!(resource.resource.is_some(), "every piece keeps its resource");
                for scope in resource.scope_spans {
                    assert!(scope.scope.is_some(), "every piece keeps its scope");
                    spans.extend(scope.spans);
                }
            }
        }
        assert_eq!(spans, original);
    }

    #[test]
    fn encode_round_trips_every_representation() {
        let request = fixtures::sidecar_traces(7, 2);
        let decoded = Batch::from_traces(request.clone());
        let encoded = Batch::from_wire(Signal::Traces, request.encode_to_vec().into()).unwrap();
        assert_eq!(decoded.to_bytes(), encoded.to_bytes());
        assert_eq!(decoded.encoded_len(), encoded.encoded_len());
    }

    #[test]
    fn wrong_signal_is_an_error_not_a_panic() {
        let batch = Batch::empty(Signal::Logs);
        assert!(matches!(batch.into_traces(), Err(DecodeError::WrongSignal { .. })));
    }
}
