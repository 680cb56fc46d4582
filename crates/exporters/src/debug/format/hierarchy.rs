//! The shape the three signals share: a request holds resources, each resource holds scopes,
//! each scope holds items (spans, log records or metrics).
//!
//! The walks over that shape are written here once, one per verbosity; a signal supplies only
//! what it calls each level and how one item prints.

use otlp::proto::common::v1::InstrumentationScope;
use otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use otlp::proto::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use otlp::proto::resource::v1::Resource;
use otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::lines::{Lines, resource_line, scope_line};

/// A resource and the scopes under it (`ResourceSpans`, `ResourceLogs`, `ResourceMetrics`).
pub(super) trait ResourceGroup {
    type Scope: ScopeGroup;
    fn resource(&self) -> Option<&Resource>;
    fn schema_url(&self) -> &str;
    fn scopes(&self) -> &[Self::Scope];
}

/// A scope and the items under it (`ScopeSpans`, `ScopeLogs`, `ScopeMetrics`).
pub(super) trait ScopeGroup {
    type Item;
    fn scope(&self) -> Option<&InstrumentationScope>;
    fn schema_url(&self) -> &str;
    fn items(&self) -> &[Self::Item];
}

/// The items under the resources of type `R`: spans, log records or metrics.
pub(super) type Item<R> = <<R as ResourceGroup>::Scope as ScopeGroup>::Item;

macro_rules! groups {
    ($resource:ty { $scopes:ident: $scope:ty { $items:ident: $item:ty } }) => {
        impl ResourceGroup for $resource {
            type Scope = $scope;
            fn resource(&self) -> Option<&Resource> {
                self.resource.as_ref()
            }
            fn schema_url(&self) -> &str {
                &self.schema_url
            }
            fn scopes(&self) -> &[$scope] {
                &self.$scopes
            }
        }

        impl ScopeGroup for $scope {
            type Item = $item;
            fn scope(&self) -> Option<&InstrumentationScope> {
                self.scope.as_ref()
            }
            fn schema_url(&self) -> &str {
                &self.schema_url
            }
            fn items(&self) -> &[$item] {
                &self.$items
            }
        }
    };
}

groups!(ResourceSpans { scope_spans: ScopeSpans { spans: Span } });
groups!(ResourceLogs { scope_logs: ScopeLogs { log_records: LogRecord } });
groups!(ResourceMetrics { scope_metrics: ScopeMetrics { metrics: Metric } });

/// What a signal calls its levels. The collector is not consistent across signals or
/// verbosities, and scripts grep for these words, so each signal spells them out.
pub(super) struct LevelNames {
    /// At `normal`: `ResourceTraces #0`, `ScopeTraces #0`.
    pub normal: [&'static str; 2],
    /// At `detailed`: `ResourceSpans #0`, `ScopeSpans #0` (and `ScopeSpans SchemaURL:`),
    /// `Span #0`.
    pub detailed: [&'static str; 3],
}

/// Every item under `resources`, in order.
pub(super) fn items<R: ResourceGroup>(resources: &[R]) -> impl Iterator<Item = &Item<R>> {
    resources.iter().flat_map(R::scopes).flat_map(ScopeGroup::items)
}

/// `normal`: a line per resource and per scope, and what `item` writes for each item.
pub(super) fn normal<R: ResourceGroup>(
    resources: &[R],
    names: &LevelNames,
    mut item: impl FnMut(&mut String, &Item<R>),
) -> String {
    let [resource_name, scope_name] = names.normal;
    let mut out = String::new();
    for (i, resource) in resources.iter().enumerate() {
        resource_line(&mut out, resource_name, i, resource.resource(), resource.schema_url());
        for (j, scope) in resource.scopes().iter().enumerate() {
            scope_line(&mut out, scope_name, j, scope.scope(), scope.schema_url());
            for each in scope.items() {
                item(&mut out, each);
            }
        }
    }
    out
}

/// `detailed`: each resource and scope field by field, then `Span #k` (or `LogRecord #k`,
/// `Metric #k`) and what `item` writes for it.
pub(super) fn detailed<R: ResourceGroup>(
    resources: &[R],
    names: &LevelNames,
    mut item: impl FnMut(&mut Lines, &Item<R>),
) -> String {
    let [resource_name, scope_name, item_name] = names.detailed;
    let mut out = Lines::default();
    for (i, resource) in resources.iter().enumerate() {
        out.line(format!("{resource_name} #{i}"));
        out.resource(resource.resource(), resource.schema_url());
        for (j, scope) in resource.scopes().iter().enumerate() {
            out.line(format!("{scope_name} #{j}"));
            out.line(format!("{scope_name} SchemaURL: {}", scope.schema_url()));
            out.scope(scope.scope());
            for (k, each) in scope.items().iter().enumerate() {
                out.line(format!("{item_name} #{k}"));
                item(&mut out, each);
            }
        }
    }
    out.into_text()
}
