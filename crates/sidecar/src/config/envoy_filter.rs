//! Istio `EnvoyFilter` documents: refused, each patch with the native rule that does its job.
//!
//! The sidecar runs no Envoy, so there is nothing to patch. The first seed uses EnvoyFilters for
//! two tracing jobs, and the Sidecar document has native rules for both:
//!
//! * a Lua filter that adds `x-envoy-force-trace` when a request header has some value
//!   (`x-debug-trace: true`, `x-priority: high`) → `spec.tracing.forceTraceHeaders`, or, for
//!   `:path`, `spec.tracing.alwaysTracePaths`; the rules are read out of the Lua source so the
//!   message can show the exact replacement;
//! * a route patch setting `disable_tracing` in the router's filter metadata →
//!   `spec.tracing.neverTracePaths`.
//!
//! Other patches get an error saying what to use instead where there is something.

use ::config::{ConfigError, ConfigErrors, Value};

use super::sidecar_resource::default_never_trace_paths;

/// What the sidecar says about every EnvoyFilter patch.
const NOT_SUPPORTED: &str = "EnvoyFilter is not supported (the sidecar has no Envoy to patch)";

/// The errors for an EnvoyFilter document: one per patch (one for the document if it has none).
pub(crate) fn errors(value: &Value, label: &str) -> ConfigErrors {
    let patches = value.get_path(&["spec", "configPatches"]).and_then(Value::as_seq).unwrap_or(&[]);
    if patches.is_empty() {
        return ConfigError::new(label, NOT_SUPPORTED).into();
    }
    patches
        .iter()
        .enumerate()
        .map(|(i, patch)| {
            ConfigError::new(
                format!("{label}.spec.configPatches[{i}]"),
                format!("{NOT_SUPPORTED}: {}", advice(patch)),
            )
        })
        .collect()
}

/// What this patch does and the native rule that does it.
fn advice(patch: &Value) -> String {
    let value = patch.get_path(&["patch", "value"]).unwrap_or(&Value::Null);
    let lua = lua_sources(value);
    if lua.iter().any(|code| code.contains("x-envoy-force-trace")) {
        let rules: Vec<ForceRule> = lua.iter().flat_map(|code| force_rules(code)).collect();
        return force_trace_advice(&rules);
    }
    if !lua.is_empty() {
        return "Lua filters are not supported".to_owned();
    }
    if has_key(value, "disable_tracing") {
        let defaults: Vec<String> = default_never_trace_paths().iter().map(render_path).collect();
        return format!(
            "this patch turns tracing off on routes (router filter metadata disable_tracing); use the native rule \
             in the Sidecar document instead: spec.tracing.neverTracePaths with the paths to skip \
             (health checks are skipped by default: [{}])",
            defaults.join(", ")
        );
    }
    if has_key(value, "tracing") {
        return "this patch changes the connection manager's tracing block; use a Telemetry resource \
                (randomSamplingPercentage, customTags) or a tracing: document instead"
            .to_owned();
    }
    if value.get("decorator").is_some() {
        return "this patch sets a route decorator; span names follow Istio's rules \
                (\"<host>:<port>/*\") and cannot be set"
            .to_owned();
    }
    "the sidecar has no equivalent for this patch".to_owned()
}

/// A force-trace condition read from Lua: header name and the value it must equal (any value
/// when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ForceRule {
    header: String,
    value: Option<String>,
}

fn force_trace_advice(rules: &[ForceRule]) -> String {
    let lead = "this Lua filter forces tracing by request header; use the native rule in the Sidecar document instead";
    let (paths, headers): (Vec<&ForceRule>, Vec<&ForceRule>) =
        rules.iter().partition(|r| r.header == ":path");
    let mut parts = Vec::new();
    if !headers.is_empty() {
        let items: Vec<String> = headers
            .iter()
            .map(|rule| match &rule.value {
                Some(value) => format!("{{name: {}, value: {}}}", rule.header, yaml_scalar(value)),
                None => format!("{{name: {}}}", rule.header),
            })
            .collect();
        parts.push(format!("spec.tracing.forceTraceHeaders: [{}]", items.join(", ")));
    }
    let path_items: Vec<String> = paths
        .iter()
        .filter_map(|rule| rule.value.as_deref())
        .map(|path| format!("{{exact: {}}}", yaml_scalar(path)))
        .collect();
    if !path_items.is_empty() {
        parts.push(format!("spec.tracing.alwaysTracePaths: [{}]", path_items.join(", ")));
    }
    if parts.is_empty() {
        return format!(
            "{lead}: spec.tracing.forceTraceHeaders (by header) or spec.tracing.alwaysTracePaths (by path)"
        );
    }
    format!("{lead}: {}", parts.join("; "))
}

fn render_path(rule: &super::sidecar_resource::PathMatch) -> String {
    match rule {
        super::sidecar_resource::PathMatch::Exact(path) => format!("{{exact: {path}}}"),
        super::sidecar_resource::PathMatch::Prefix(path) => format!("{{prefix: {path}}}"),
    }
}

/// A string as YAML would need it written to stay a string (`"true"`, `high`).
fn yaml_scalar(text: &str) -> String {
    let reserved = ["true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"];
    let plain = !text.is_empty()
        && !reserved.contains(&text.to_ascii_lowercase().as_str())
        && text.parse::<f64>().is_err()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if plain { text.to_owned() } else { format!("{text:?}") }
}

/// Whether `key` appears anywhere under `value`.
fn has_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Map(map) => map.iter().any(|(k, v)| k == key || has_key(v, key)),
        Value::Seq(items) => items.iter().any(|item| has_key(item, key)),
        _ => false,
    }
}

/// The Lua sources in a patch value: the strings under a Lua filter's `typed_config`.
fn lua_sources(value: &Value) -> Vec<String> {
    let is_lua =
        value.get("name").and_then(Value::as_str).is_some_and(|name| name.ends_with(".lua"))
            || value
                .get_path(&["typed_config", "@type"])
                .and_then(Value::as_str)
                .is_some_and(|url| url.ends_with(".lua.v3.Lua"));
    let mut out = Vec::new();
    if is_lua {
        collect_strings(value.get("typed_config").unwrap_or(&Value::Null), &mut out);
    }
    out
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains("envoy_on_") => out.push(text.clone()),
        Value::Map(map) => map.iter().for_each(|(_, v)| collect_strings(v, out)),
        Value::Seq(items) => items.iter().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Reads `if <header> == "<value>" then … add("x-envoy-force-trace" …) … end` rules out of Lua
/// source, where `<header>` is `request_handle:headers():get("name")` or a local assigned from
/// it. Conditions it cannot read are skipped.
fn force_rules(code: &str) -> Vec<ForceRule> {
    let mut locals: Vec<(String, String)> = Vec::new();
    // One entry per open `if`: the rules its condition stands for.
    let mut open: Vec<Vec<ForceRule>> = Vec::new();
    let mut rules = Vec::new();
    for raw in code.lines() {
        let line = raw.split("--").next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix("local ")
            && let Some((name, expr)) = rest.split_once('=')
            && let Some(header) = header_read(expr)
        {
            locals.push((name.trim().to_owned(), header));
        }
        if let Some(condition) = line.strip_prefix("if ").and_then(|rest| rest.strip_suffix("then"))
        {
            open.push(condition_rules(condition, &locals));
        } else if line == "end" || line.starts_with("end ") {
            open.pop();
        }
        let forces = line.contains("x-envoy-force-trace")
            && (line.contains(":add(") || line.contains(":replace("));
        if forces && let Some(current) = open.last() {
            for rule in current {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    rules
}

/// `request_handle:headers():get("x-debug-trace")` → `x-debug-trace`.
fn header_read(expr: &str) -> Option<String> {
    let start = expr.find(":get(")? + ":get(".len();
    let rest = &expr[start..];
    let name = rest.trim_start().strip_prefix(['"', '\''])?;
    let end = name.find(['"', '\''])?;
    Some(name[..end].to_ascii_lowercase())
}

/// The rules an `if` condition stands for: `a == "x" or b ~= nil`, with `a`, `b` header reads
/// or locals holding them. A condition with `and`, or one that cannot be read, stands for none.
fn condition_rules(condition: &str, locals: &[(String, String)]) -> Vec<ForceRule> {
    if condition.contains(" and ") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for part in condition.split(" or ") {
        let part = part.trim();
        let (lhs, value) = if let Some((lhs, rhs)) = part.split_once("==") {
            let rhs = rhs.trim();
            let Some(value) =
                rhs.strip_prefix(['"', '\'']).and_then(|r| r.strip_suffix(['"', '\'']))
            else {
                return Vec::new();
            };
            (lhs.trim(), Some(value.to_owned()))
        } else if let Some((lhs, rhs)) = part.split_once("~=") {
            if rhs.trim() != "nil" {
                return Vec::new();
            }
            (lhs.trim(), None)
        } else {
            (part, None)
        };
        let header = header_read(lhs).or_else(|| {
            locals.iter().rev().find(|(name, _)| name == lhs).map(|(_, header)| header.clone())
        });
        match header {
            Some(header) => out.push(ForceRule { header, value }),
            None => return Vec::new(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_force_trace_rules_from_lua() {
        let code = r#"
function envoy_on_request(request_handle)
  local debug = request_handle:headers():get("x-debug-trace")
  if debug == "true" then
    request_handle:headers():add("x-envoy-force-trace", "true")
  end
  if request_handle:headers():get("x-canary") ~= nil or request_handle:headers():get(":path") == "/checkout" then
    request_handle:headers():replace("x-envoy-force-trace", "true")
  end
end
"#;
        let rules = force_rules(code);
        assert_eq!(
            rules,
            vec![
                ForceRule { header: "x-debug-trace".into(), value: Some("true".into()) },
                ForceRule { header: "x-canary".into(), value: None },
                ForceRule { header: ":path".into(), value: Some("/checkout".into()) },
            ]
        );
        assert_eq!(
            force_trace_advice(&rules),
            "this Lua filter forces tracing by request header; use the native rule in the Sidecar document \
             instead: spec.tracing.forceTraceHeaders: [{name: x-debug-trace, value: \"true\"}, {name: x-canary}]; \
             spec.tracing.alwaysTracePaths: [{exact: /checkout}]"
        );
    }

    #[test]
    fn unreadable_conditions_give_the_general_advice() {
        let code = "function envoy_on_request(h)\n if math.random() < 0.5 then\n h:headers():add(\"x-envoy-force-trace\", \"1\")\n end\nend";
        assert!(force_rules(code).is_empty());
        assert!(force_trace_advice(&[]).ends_with(
            "spec.tracing.forceTraceHeaders (by header) or spec.tracing.alwaysTracePaths (by path)"
        ));
    }
}
