//! The OTLP span of one exchange: kind SERVER (inbound) or CLIENT (outbound), named as Istio
//! names the default routes, with this proxy's ids, its times and its status.
//!
//! Names (mesh-tracing-spec §1.2): Istio decorates its default inbound and outbound routes with
//! `<service FQDN>:<port>/*`, which becomes the span name. The host and port come from the
//! cluster name (`outbound|9080||reviews.default.svc.cluster.local`); an inbound cluster
//! without a host (`inbound|9080||`) uses this workload's service host; a cluster of another
//! form (a passthrough) uses the request's authority. A caller's
//! `x-envoy-decorator-operation` renames an inbound span, as in Envoy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use otlp::proto::trace::v1::span::SpanKind;
use otlp::proto::trace::v1::status::StatusCode;
use otlp::proto::trace::v1::{Span, SpanFlags, Status};

use super::context::ProxySpan;
use super::tags::{Kind, SpanStatus, SpanTags};

/// What names a span.
pub(crate) struct Naming<'a> {
    pub(crate) kind: Kind,
    /// Envoy's cluster name for the destination.
    pub(crate) upstream_cluster: &'a str,
    /// The request's `:authority` / `Host`.
    pub(crate) authority: Option<&'a str>,
    /// This workload's service host, for inbound clusters without one.
    pub(crate) inbound_host: &'a str,
    /// The port to use when nothing else gives one (the listener's).
    pub(crate) fallback_port: u16,
}

/// The span name: `<fqdn>:<port>/*`.
pub(crate) fn operation_name(naming: &Naming<'_>) -> String {
    if let Some(name) =
        cluster_operation_name(naming.kind, naming.upstream_cluster, naming.inbound_host)
    {
        return name;
    }
    match (naming.kind, naming.authority.filter(|a| !a.is_empty())) {
        (Kind::Server, _) => format!("{}:{}/*", naming.inbound_host, naming.fallback_port),
        (Kind::Client, Some(authority)) if has_port(authority) => format!("{authority}/*"),
        (Kind::Client, Some(authority)) => format!("{authority}:80/*"),
        (Kind::Client, None) => format!("{}/*", naming.upstream_cluster),
    }
}

/// The span name given by an Istio cluster name alone (`None` when the authority or the
/// listener's port decide it), so it can be worked out once per known cluster.
pub(crate) fn cluster_operation_name(
    kind: Kind,
    cluster: &str,
    inbound_host: &str,
) -> Option<String> {
    let mut parts = cluster.split('|');
    let fields = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next());
    if let (Some("inbound" | "outbound"), Some(port), Some(_), Some(host), None) = fields
        && let Ok(port) = port.parse::<u16>()
    {
        if !host.is_empty() {
            return Some(format!("{host}:{port}/*"));
        }
        if kind == Kind::Server {
            return Some(format!("{inbound_host}:{port}/*"));
        }
    }
    None
}

/// Whether `host[:port]` (or `[v6]:port`) ends in a port.
fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.starts_with('[') || host.ends_with(']'))
        }
        None => false,
    }
}

/// A finished exchange, ready to become a span.
pub(crate) struct Finished<'a> {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) span: &'a ProxySpan,
    /// Whether the parent came over the wire (false for a stitched parent: the SERVER span of
    /// this same proxy).
    pub(crate) remote_parent: bool,
    pub(crate) start: SystemTime,
    pub(crate) duration: Duration,
    pub(crate) tags: SpanTags,
}

/// The OTLP span.
pub(crate) fn build(finished: Finished<'_>) -> Span {
    let start = unix_nanos(finished.start);
    let end = start.saturating_add(u64::try_from(finished.duration.as_nanos()).unwrap_or(u64::MAX));
    let context = &finished.span.context;
    let mut flags = u32::from(context.flags.bits()) | SpanFlags::ContextHasIsRemoteMask as u32;
    if finished.span.parent.is_some() && finished.remote_parent {
        flags |= SpanFlags::ContextIsRemoteMask as u32;
    }
    let kind = match finished.kind {
        Kind::Server => SpanKind::Server,
        Kind::Client => SpanKind::Client,
    };
    let code = match finished.tags.status {
        SpanStatus::Unset => StatusCode::Unset,
        SpanStatus::Error => StatusCode::Error,
    };
    let attributes = finished
        .tags
        .attributes
        .into_iter()
        .map(|(key, value)| KeyValue {
            key: key.into_owned(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }),
            ..Default::default()
        })
        .collect();
    Span {
        trace_id: context.trace_id.to_bytes().to_vec(),
        span_id: context.span_id.to_bytes().to_vec(),
        trace_state: finished.span.tracestate.to_string(),
        parent_span_id: finished.span.parent.map(|id| id.to_bytes().to_vec()).unwrap_or_default(),
        flags,
        name: finished.name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        status: Some(Status { code: code as i32, message: String::new() }),
        ..Default::default()
    }
}

/// Nanoseconds since the Unix epoch (0 for a clock before it).
fn unix_nanos(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use propagation::tracestate::TraceState;
    use propagation::{SpanContext, SpanId, TraceFlags, TraceId};

    use super::*;

    fn name(kind: Kind, cluster: &str, authority: Option<&str>) -> String {
        let naming = Naming {
            kind,
            upstream_cluster: cluster,
            authority,
            inbound_host: "productpage.default.svc.cluster.local",
            fallback_port: 9080,
        };
        operation_name(&naming)
    }

    #[test]
    fn names_are_istios_default_route_decorators() {
        let reviews = "outbound|9080||reviews.default.svc.cluster.local";
        assert_eq!(
            name(Kind::Client, reviews, Some("reviews:9080")),
            "reviews.default.svc.cluster.local:9080/*"
        );
        let subset = "outbound|9080|v2|reviews.default.svc.cluster.local";
        assert_eq!(name(Kind::Client, subset, None), "reviews.default.svc.cluster.local:9080/*");
        assert_eq!(
            name(Kind::Server, "inbound|9080||", None),
            "productpage.default.svc.cluster.local:9080/*"
        );
        let old = "inbound|9080||productpage.default.svc.cluster.local";
        assert_eq!(name(Kind::Server, old, None), "productpage.default.svc.cluster.local:9080/*");
        assert_eq!(
            name(Kind::Client, "PassthroughCluster", Some("example.com")),
            "example.com:80/*"
        );
        assert_eq!(name(Kind::Client, "PassthroughCluster", Some("[::1]:8080")), "[::1]:8080/*");
        assert_eq!(
            name(Kind::Server, "", Some("whatever:1")),
            "productpage.default.svc.cluster.local:9080/*"
        );
    }

    #[test]
    fn spans_carry_ids_kind_times_status_and_string_attributes() {
        let trace = TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).unwrap();
        let span = ProxySpan {
            context: SpanContext::new(
                trace,
                SpanId::from_u64(0xab).unwrap(),
                TraceFlags::new(true, true),
            ),
            parent: Some(SpanId::from_u64(0xcd).unwrap()),
            tracestate: TraceState::parse("congo=t61").unwrap(),
            b3_debug: false,
        };
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let otlp = build(Finished {
            kind: Kind::Client,
            name: "reviews:9080/*".into(),
            span: &span,
            remote_parent: true,
            start,
            duration: Duration::from_millis(3),
            tags: SpanTags {
                attributes: vec![(Cow::Borrowed("component"), "proxy".into())],
                status: SpanStatus::Error,
            },
        });
        assert_eq!(otlp.trace_id, trace.to_bytes().to_vec());
        assert_eq!(otlp.span_id, 0xabu64.to_be_bytes().to_vec());
        assert_eq!(otlp.parent_span_id, 0xcdu64.to_be_bytes().to_vec());
        assert_eq!(otlp.trace_state, "congo=t61");
        assert_eq!(otlp.flags, 0x303, "sampled + random, remote parent known and remote");
        assert_eq!(otlp.kind, SpanKind::Client as i32);
        assert_eq!(otlp.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(otlp.end_time_unix_nano - otlp.start_time_unix_nano, 3_000_000);
        assert_eq!(otlp.status.unwrap().code, StatusCode::Error as i32);
        assert_eq!(otlp.attributes[0].key, "component");
    }
}
