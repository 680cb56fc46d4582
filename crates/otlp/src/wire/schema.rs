//! The OTLP protobuf schema as static tables, transcribed from the messages opentelemetry-proto
//! 0.33 generates.
//!
//! A table per message keeps the walker in `super` generic and small. The tables must list every
//! field prost knows with the same type: a field missing here would be skipped as unknown while
//! prost checks it, breaking the promise that whatever `scan` accepts prost decodes. Fields are
//! listed in field-number order so that lookup is usually one comparison.

use crate::signal::Signal;

/// The wire types OTLP can use; groups (3 and 4) are refused before a `Wire` is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    Varint,
    I64,
    Len,
    I32,
}

/// What a field holds, which decides the wire types it may arrive with.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// A scalar of exactly this wire type: ints, enums and bools as varints, fixed and double.
    Scalar(Wire),
    /// A repeated scalar, packed (length-delimited) or one element per key.
    PackedOrScalar(Wire),
    /// UTF-8 text.
    String,
    /// Opaque bytes.
    Bytes,
    /// A trace or span id: exactly this many bytes, or none.
    Id(usize),
    Message(&'static Schema),
}

/// What a field contributes to the item count.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Plain,
    /// Each occurrence is one span, log record or data point.
    Item,
    /// A member of a oneof that holds items; prost keeps only the last member that appears.
    Oneof,
}

pub(super) struct Field {
    pub number: u32,
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    pub role: Role,
}

pub(super) struct Schema {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Schema {
    #[inline]
    pub fn field(&self, number: u32) -> Option<&Field> {
        // Most tables are dense from 1, so field n usually sits at index n - 1.
        if let Some(field) = self.fields.get((number as usize).wrapping_sub(1))
            && field.number == number
        {
            return Some(field);
        }
        self.fields.iter().find(|field| field.number == number)
    }
}

impl Kind {
    /// Whether a length-delimited value is acceptable.
    pub fn delimited(self) -> bool {
        !matches!(self, Kind::Scalar(_))
    }

    /// The scalar wire type that is acceptable, if any.
    pub fn scalar(self) -> Option<Wire> {
        match self {
            Kind::Scalar(wire) | Kind::PackedOrScalar(wire) => Some(wire),
            _ => None,
        }
    }

    /// The acceptable wire types, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Scalar(wire) => wire.name(),
            Kind::PackedOrScalar(Wire::Varint) => "varint or length-delimited",
            Kind::PackedOrScalar(Wire::I64) => "64-bit or length-delimited",
            Kind::PackedOrScalar(Wire::I32) => "32-bit or length-delimited",
            _ => "length-delimited",
        }
    }
}

impl Wire {
    pub fn number(self) -> u8 {
        match self {
            Wire::Varint => 0,
            Wire::I64 => 1,
            Wire::Len => 2,
            Wire::I32 => 5,
        }
    }

    pub fn from_number(number: u8) -> Option<Wire> {
        match number {
            0 => Some(Wire::Varint),
            1 => Some(Wire::I64),
            2 => Some(Wire::Len),
            5 => Some(Wire::I32),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Wire::Varint => "varint",
            Wire::I64 => "64-bit",
            Wire::Len => "length-delimited",
            Wire::I32 => "32-bit",
        }
    }
}

/// The schema of the export request for `signal`.
pub(super) fn request(signal: Signal) -> &'static Schema {
    match signal {
        Signal::Traces => &TRACE_REQUEST,
        Signal::Logs => &LOGS_REQUEST,
        Signal::Metrics => &METRICS_REQUEST,
    }
}

// === table helpers ===

const VARINT: Kind = Kind::Scalar(Wire::Varint);
const FIXED64: Kind = Kind::Scalar(Wire::I64);
const FIXED32: Kind = Kind::Scalar(Wire::I32);
const TRACE_ID: Kind = Kind::Id(16);
const SPAN_ID: Kind = Kind::Id(8);

const fn one(number: u32, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, repeated: false, role: Role::Plain }
}

const fn many(number: u32, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, repeated: true, role: Role::Plain }
}

const fn msg(number: u32, name: &'static str, schema: &'static Schema) -> Field {
    one(number, name, Kind::Message(schema))
}

const fn msgs(number: u32, name: &'static str, schema: &'static Schema) -> Field {
    many(number, name, Kind::Message(schema))
}

const fn items(number: u32, name: &'static str, schema: &'static Schema) -> Field {
    Field { number, name, kind: Kind::Message(schema), repeated: true, role: Role::Item }
}

const fn oneof(number: u32, name: &'static str, schema: &'static Schema) -> Field {
    Field { number, name, kind: Kind::Message(schema), repeated: false, role: Role::Oneof }
}

const fn schema(name: &'static str, fields: &'static [Field]) -> Schema {
    Schema { name, fields }
}

// === common and resource ===

static RESOURCE: Schema = schema(
    "Resource",
    &[
        msgs(1, "attributes", &KEY_VALUE),
        one(2, "dropped_attributes_count", VARINT),
        msgs(3, "entity_refs", &ENTITY_REF),
    ],
);

static ENTITY_REF: Schema = schema(
    "EntityRef",
    &[
        one(1, "schema_url", Kind::String),
        one(2, "type", Kind::String),
        many(3, "id_keys", Kind::String),
        many(4, "description_keys", Kind::String),
    ],
);

static SCOPE: Schema = schema(
    "InstrumentationScope",
    &[
        one(1, "name", Kind::String),
        one(2, "version", Kind::String),
        msgs(3, "attributes", &KEY_VALUE),
        one(4, "dropped_attributes_count", VARINT),
    ],
);

static KEY_VALUE: Schema = schema(
    "KeyValue",
    &[one(1, "key", Kind::String), msg(2, "value", &ANY_VALUE), one(3, "key_strindex", VARINT)],
);

static ANY_VALUE: Schema = schema(
    "AnyValue",
    &[
        one(1, "string_value", Kind::String),
        one(2, "bool_value", VARINT),
        one(3, "int_value", VARINT),
        one(4, "double_value", FIXED64),
        msg(5, "array_value", &ARRAY_VALUE),
        msg(6, "kvlist_value", &KEY_VALUE_LIST),
        one(7, "bytes_value", Kind::Bytes),
        one(8, "string_value_strindex", VARINT),
    ],
);

static ARRAY_VALUE: Schema = schema("ArrayValue", &[msgs(1, "values", &ANY_VALUE)]);

static KEY_VALUE_LIST: Schema = schema("KeyValueList", &[msgs(1, "values", &KEY_VALUE)]);

// === traces ===

static TRACE_REQUEST: Schema =
    schema("ExportTraceServiceRequest", &[msgs(1, "resource_spans", &RESOURCE_SPANS)]);

static RESOURCE_SPANS: Schema = schema(
    "ResourceSpans",
    &[
        msg(1, "resource", &RESOURCE),
        msgs(2, "scope_spans", &SCOPE_SPANS),
        one(3, "schema_url", Kind::String),
    ],
);

static SCOPE_SPANS: Schema = schema(
    "ScopeSpans",
    &[msg(1, "scope", &SCOPE), items(2, "spans", &SPAN), one(3, "schema_url", Kind::String)],
);

static SPAN: Schema = schema(
    "Span",
    &[
        one(1, "trace_id", TRACE_ID),
        one(2, "span_id", SPAN_ID),
        one(3, "trace_state", Kind::String),
        one(4, "parent_span_id", SPAN_ID),
        one(5, "name", Kind::String),
        one(6, "kind", VARINT),
        one(7, "start_time_unix_nano", FIXED64),
        one(8, "end_time_unix_nano", FIXED64),
        msgs(9, "attributes", &KEY_VALUE),
        one(10, "dropped_attributes_count", VARINT),
        msgs(11, "events", &EVENT),
        one(12, "dropped_events_count", VARINT),
        msgs(13, "links", &LINK),
        one(14, "dropped_links_count", VARINT),
        msg(15, "status", &STATUS),
        one(16, "flags", FIXED32),
    ],
);

static EVENT: Schema = schema(
    "Span.Event",
    &[
        one(1, "time_unix_nano", FIXED64),
        one(2, "name", Kind::String),
        msgs(3, "attributes", &KEY_VALUE),
        one(4, "dropped_attributes_count", VARINT),
    ],
);

static LINK: Schema = schema(
    "Span.Link",
    &[
        one(1, "trace_id", TRACE_ID),
        one(2, "span_id", SPAN_ID),
        one(3, "trace_state", Kind::String),
        msgs(4, "attributes", &KEY_VALUE),
        one(5, "dropped_attributes_count", VARINT),
        one(6, "flags", FIXED32),
    ],
);

static STATUS: Schema =
    schema("Status", &[one(2, "message", Kind::String), one(3, "code", VARINT)]);

// === logs ===

static LOGS_REQUEST: Schema =
    schema("ExportLogsServiceRequest", &[msgs(1, "resource_logs", &RESOURCE_LOGS)]);

static RESOURCE_LOGS: Schema = schema(
    "ResourceLogs",
    &[
        msg(1, "resource", &RESOURCE),
        msgs(2, "scope_logs", &SCOPE_LOGS),
        one(3, "schema_url", Kind::String),
    ],
);

static SCOPE_LOGS: Schema = schema(
    "ScopeLogs",
    &[
        msg(1, "scope", &SCOPE),
        items(2, "log_records", &LOG_RECORD),
        one(3, "schema_url", Kind::String),
    ],
);

static LOG_RECORD: Schema = schema(
    "LogRecord",
    &[
        one(1, "time_unix_nano", FIXED64),
        one(2, "severity_number", VARINT),
        one(3, "severity_text", Kind::String),
        msg(5, "body", &ANY_VALUE),
        msgs(6, "attributes", &KEY_VALUE),
        one(7, "dropped_attributes_count", VARINT),
        one(8, "flags", FIXED32),
        one(9, "trace_id", TRACE_ID),
        one(10, "span_id", SPAN_ID),
        one(11, "observed_time_unix_nano", FIXED64),
        one(12, "event_name", Kind::String),
    ],
);

// === metrics ===

static METRICS_REQUEST: Schema =
    schema("ExportMetricsServiceRequest", &[msgs(1, "resource_metrics", &RESOURCE_METRICS)]);

static RESOURCE_METRICS: Schema = schema(
    "ResourceMetrics",
    &[
        msg(1, "resource", &RESOURCE),
        msgs(2, "scope_metrics", &SCOPE_METRICS),
        one(3, "schema_url", Kind::String),
    ],
);

static SCOPE_METRICS: Schema = schema(
    "ScopeMetrics",
    &[msg(1, "scope", &SCOPE), msgs(2, "metrics", &METRIC), one(3, "schema_url", Kind::String)],
);

static METRIC: Schema = schema(
    "Metric",
    &[
        one(1, "name", Kind::String),
        one(2, "description", Kind::String),
        one(3, "unit", Kind::String),
        oneof(5, "gauge", &GAUGE),
        oneof(7, "sum", &SUM),
        oneof(9, "histogram", &HISTOGRAM),
        oneof(10, "exponential_histogram", &EXPONENTIAL_HISTOGRAM),
        oneof(11, "summary", &SUMMARY),
        msgs(12, "metadata", &KEY_VALUE),
    ],
);

static GAUGE: Schema = schema("Gauge", &[items(1, "data_points", &NUMBER_DATA_POINT)]);

static SUM: Schema = schema(
    "Sum",
    &[
        items(1, "data_points", &NUMBER_DATA_POINT),
        one(2, "aggregation_temporality", VARINT),
        one(3, "is_monotonic", VARINT),
    ],
);

static HISTOGRAM: Schema = schema(
    "Histogram",
    &[items(1, "data_points", &HISTOGRAM_DATA_POINT), one(2, "aggregation_temporality", VARINT)],
);

static EXPONENTIAL_HISTOGRAM: Schema = schema(
    "ExponentialHistogram",
    &[
        items(1, "data_points", &EXPONENTIAL_HISTOGRAM_DATA_POINT),
        one(2, "aggregation_temporality", VARINT),
    ],
);

static SUMMARY: Schema = schema("Summary", &[items(1, "data_points", &SUMMARY_DATA_POINT)]);

static NUMBER_DATA_POINT: Schema = schema(
    "NumberDataPoint",
    &[
        one(2, "start_time_unix_nano", FIXED64),
        one(3, "time_unix_nano", FIXED64),
        one(4, "as_double", FIXED64),
        msgs(5, "exemplars", &EXEMPLAR),
        one(6, "as_int", FIXED64),
        msgs(7, "attributes", &KEY_VALUE),
        one(8, "flags", VARINT),
    ],
);

static HISTOGRAM_DATA_POINT: Schema = schema(
    "HistogramDataPoint",
    &[
        one(2, "start_time_unix_nano", FIXED64),
        one(3, "time_unix_nano", FIXED64),
        one(4, "count", FIXED64),
        one(5, "sum", FIXED64),
        many(6, "bucket_counts", Kind::PackedOrScalar(Wire::I64)),
        many(7, "explicit_bounds", Kind::PackedOrScalar(Wire::I64)),
        msgs(8, "exemplars", &EXEMPLAR),
        msgs(9, "attributes", &KEY_VALUE),
        one(10, "flags", VARINT),
        one(11, "min", FIXED64),
        one(12, "max", FIXED64),
    ],
);

static EXPONENTIAL_HISTOGRAM_DATA_POINT: Schema = schema(
    "ExponentialHistogramDataPoint",
    &[
        msgs(1, "attributes", &KEY_VALUE),
        one(2, "start_time_unix_nano", FIXED64),
        one(3, "time_unix_nano", FIXED64),
        one(4, "count", FIXED64),
        one(5, "sum", FIXED64),
        one(6, "scale", VARINT),
        one(7, "zero_count", FIXED64),
        msg(8, "positive", &BUCKETS),
        msg(9, "negative", &BUCKETS),
        one(10, "flags", VARINT),
        msgs(11, "exemplars", &EXEMPLAR),
        one(12, "min", FIXED64),
        one(13, "max", FIXED64),
        one(14, "zero_threshold", FIXED64),
    ],
);

static BUCKETS: Schema = schema(
    "ExponentialHistogramDataPoint.Buckets",
    &[one(1, "offset", VARINT), many(2, "bucket_counts", Kind::PackedOrScalar(Wire::Varint))],
);

static SUMMARY_DATA_POINT: Schema = schema(
    "SummaryDataPoint",
    &[
        one(2, "start_time_unix_nano", FIXED64),
        one(3, "time_unix_nano", FIXED64),
        one(4, "count", FIXED64),
        one(5, "sum", FIXED64),
        msgs(6, "quantile_values", &VALUE_AT_QUANTILE),
        msgs(7, "attributes", &KEY_VALUE),
        one(8, "flags", VARINT),
    ],
);

static VALUE_AT_QUANTILE: Schema = schema(
    "SummaryDataPoint.ValueAtQuantile",
    &[one(1, "quantile", FIXED64), one(2, "value", FIXED64)],
);

static EXEMPLAR: Schema = schema(
    "Exemplar",
    &[
        one(2, "time_unix_nano", FIXED64),
        one(3, "as_double", FIXED64),
        one(4, "span_id", SPAN_ID),
        one(5, "trace_id", TRACE_ID),
        one(6, "as_int", FIXED64),
        msgs(7, "filtered_attributes", &KEY_VALUE),
    ],
);
