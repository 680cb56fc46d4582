//! The W3C `tracestate` header: an ordered list of vendor `key=value` entries.
//!
//! Parsing ([`TraceState::extract`], [`TraceState::parse`]):
//!
//! * all `tracestate` header fields are combined in order, as if joined with `,`;
//! * empty and whitespace-only list members (`a=1,,b=2`, an empty header) are skipped;
//! * spaces and tabs around members are ignored; leading spaces of a value are kept;
//! * keys follow the [`KeyGrammar`] (default [`KeyGrammar::Level2`], the current specification);
//! * values are 1–256 characters of `0x20–0x7E` except `,` and `=`, not ending in a space;
//! * any invalid member, a duplicate key or more than 32 members makes the whole header invalid:
//!   it is discarded (`Err`), which never affects `traceparent`.
//!
//! Mutation ([`TraceState::update`]) moves the key to the front and then applies the limits: at
//! most 32 members (dropping from the right) and at most 512 characters, removing whole entries,
//! first those longer than 128 characters, then from the right.
//!
//! Per the specification, `tracestate` is only read when `traceparent` was valid.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::ows;

/// The header name.
pub const HEADER: HeaderName = HeaderName::from_static("tracestate");
/// Most list members a `tracestate` may hold.
pub const MAX_MEMBERS: usize = 32;
/// Longest key.
pub const MAX_KEY_LEN: usize = 256;
/// Longest value.
pub const MAX_VALUE_LEN: usize = 256;
/// The combined length [`TraceState::update`] keeps the header within; the specification asks
/// vendors to propagate at least this much.
pub const MAX_HEADER_LEN: usize = 512;
/// Entries longer than this are the first removed when truncating.
pub const LARGE_ENTRY_LEN: usize = 128;

/// Which key syntax to accept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyGrammar {
    /// Trace Context Level 2 and the current draft: `(lcalpha / DIGIT) 0*255(keychar)`, where
    /// keychar is `a-z 0-9 _ - * / @`. Multi-tenant keys (`tenant@system`) are a special case.
    #[default]
    Level2,
    /// Trace Context Level 1: a simple key `lcalpha 0*255(a-z 0-9 _ - * /)`, or a multi-tenant
    /// key `tenant@system` with a tenant of 1–241 characters starting with `a-z 0-9` and a system
    /// of 1–14 characters starting with `a-z`.
    Level1,
}

/// Why a `tracestate` was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceStateError {
    /// More than [`MAX_MEMBERS`] list members.
    TooManyMembers,
    /// The same key twice.
    DuplicateKey,
    /// A list member without `=`.
    MissingEquals,
    /// A key outside the grammar.
    InvalidKey,
    /// An empty, too long or badly formed value.
    InvalidValue,
}

impl TraceStateError {
    /// A stable snake_case label, for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooManyMembers => "too_many_members",
            Self::DuplicateKey => "duplicate_key",
            Self::MissingEquals => "missing_equals",
            Self::InvalidKey => "invalid_key",
            Self::InvalidValue => "invalid_value",
        }
    }
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::TooManyMembers => "more than 32 list members",
            Self::DuplicateKey => "duplicate key",
            Self::MissingEquals => "list member without '='",
            Self::InvalidKey => "invalid key",
            Self::InvalidValue => "invalid value",
        };
        write!(f, "invalid tracestate: {text}")
    }
}

impl std::error::Error for TraceStateError {}

/// An ordered `tracestate` list; keys are unique. The left-most entry belongs to the vendor that
/// wrote `traceparent`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

// === impl TraceState ===

impl TraceState {
    /// The empty list.
    pub const EMPTY: Self = Self { members: Vec::new() };

    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one header value with the Level 2 key grammar.
    pub fn parse(value: &str) -> Result<Self, TraceStateError> {
        Self::parse_fields([value.as_bytes()], KeyGrammar::Level2)
    }

    /// Parses several header field values, combined in order.
    pub fn parse_fields<'a>(
        fields: impl IntoIterator<Item = &'a [u8]>,
        grammar: KeyGrammar,
    ) -> Result<Self, TraceStateError> {
        let mut members: Vec<(String, String)> = Vec::new();
        for field in fields {
            for member in field.split(|&b| b == b',') {
                let member = ows::trim(member);
                if member.is_empty() {
                    continue;
                }
                if members.len() == MAX_MEMBERS {
                    return Err(TraceStateError::TooManyMembers);
                }
                let (key, value) = split_member(member, grammar)?;
                if members.iter().any(|(k, _)| *k == key) {
                    return Err(TraceStateError::DuplicateKey);
                }
                members.push((key, value));
            }
        }
        Ok(Self { members })
    }

    /// Reads every `tracestate` header of a request with the Level 2 key grammar. No header gives
    /// an empty list.
    pub fn extract(headers: &HeaderMap) -> Result<Self, TraceStateError> {
        Self::extract_with(headers, KeyGrammar::Level2)
    }

    /// [`TraceState::extract`] with a chosen key grammar.
    pub fn extract_with(headers: &HeaderMap, grammar: KeyGrammar) -> Result<Self, TraceStateError> {
        Self::parse_fields(headers.get_all(&HEADER).iter().map(HeaderValue::as_bytes), grammar)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The entries, left to right.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Sets `key` to `value` and moves it to the front (left), as a vendor does when it takes over
    /// `traceparent`; then applies the limits ([`MAX_MEMBERS`], [`MAX_HEADER_LEN`]) by removing
    /// whole entries, larger than [`LARGE_ENTRY_LEN`] first, then from the right. The key must
    /// follow the Level 2 grammar.
    pub fn update(&mut self, key: &str, value: &str) -> Result<(), TraceStateError> {
        if !is_valid_key(key.as_bytes(), KeyGrammar::Level2) {
            return Err(TraceStateError::InvalidKey);
        }
        if !is_valid_value(value.as_bytes()) {
            return Err(TraceStateError::InvalidValue);
        }
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        self.members.truncate(MAX_MEMBERS);
        self.truncate(MAX_HEADER_LEN);
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.members.iter().position(|(k, _)| k == key)?;
        Some(self.members.remove(index).1)
    }

    /// Removes whole entries until the header is at most `max_len` characters: entries longer
    /// than [`LARGE_ENTRY_LEN`] first (right-most first), then from the right.
    pub fn truncate(&mut self, max_len: usize) {
        while self.header_len() > max_len {
            let large =
                self.members.iter().rposition(|(k, v)| k.len() + 1 + v.len() > LARGE_ENTRY_LEN);
            match large {
                Some(index) => {
                    self.members.remove(index);
                }
                None => {
                    self.members.pop();
                }
            }
        }
    }

    /// Length of the formatted header value: entries plus separating commas.
    pub fn header_len(&self) -> usize {
        let entries: usize = self.members.iter().map(|(k, v)| k.len() + 1 + v.len()).sum();
        entries + self.members.len().saturating_sub(1)
    }

    /// The header value, `None` when empty (the specification asks not to send empty headers).
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        if self.is_empty() {
            return None;
        }
        HeaderValue::try_from(self.to_string()).ok()
    }

    /// Sets the `tracestate` header to this list, or removes it when the list is empty.
    pub fn inject(&self, headers: &mut HeaderMap) {
        crate::header::set_or_remove(headers, HEADER, self.to_header_value());
    }
}

impl fmt::Display for TraceState {
    /// `key=value` entries joined by `,` without whitespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (key, value)) in self.members.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

/// Splits a trimmed, non-empty list member into a validated key and value.
fn split_member(member: &[u8], grammar: KeyGrammar) -> Result<(String, String), TraceStateError> {
    let equals = member.iter().position(|&b| b == b'=').ok_or(TraceStateError::MissingEquals)?;
    let (key, value) = member.split_at(equals);
    let value = value.get(1..).unwrap_or_default();
    if !is_valid_key(key, grammar) {
        return Err(TraceStateError::InvalidKey);
    }
    if !is_valid_value(value) {
        return Err(TraceStateError::InvalidValue);
    }
    // Both are ASCII by now.
    let key = String::from_utf8_lossy(key).into_owned();
    let value = String::from_utf8_lossy(value).into_owned();
    Ok((key, value))
}

fn is_key_char(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// Whether `key` is a valid `tracestate` key under `grammar`.
pub fn is_valid_key(key: &[u8], grammar: KeyGrammar) -> bool {
    match grammar {
        KeyGrammar::Level2 => match key.split_first() {
            Some((first, rest)) => {
                key.len() <= MAX_KEY_LEN
                    && matches!(first, b'a'..=b'z' | b'0'..=b'9')
                    && rest.iter().all(|&b| b == b'@' || is_key_char(b))
            }
            None => false,
        },
        KeyGrammar::Level1 => match key.iter().position(|&b| b == b'@') {
            None => match key.split_first() {
                Some((first, rest)) => {
                    key.len() <= MAX_KEY_LEN
                        && first.is_ascii_lowercase()
                        && rest.iter().all(|&b| is_key_char(b))
                }
                None => false,
            },
            Some(at) => {
                let (tenant, system) = key.split_at(at);
                let system = system.get(1..).unwrap_or_default();
                let tenant_ok = match tenant.split_first() {
                    Some((first, rest)) => {
                        tenant.len() <= 241
                            && matches!(first, b'a'..=b'z' | b'0'..=b'9')
                            && rest.iter().all(|&b| is_key_char(b))
                    }
                    None => false,
                };
                let system_ok = match system.split_first() {
                    Some((first, rest)) => {
                        system.len() <= 14
                            && first.is_ascii_lowercase()
                            && rest.iter().all(|&b| is_key_char(b))
                    }
                    None => false,
                };
                tenant_ok && system_ok
            }
        },
    }
}

/// Whether `value` is a valid `tracestate` value: 1–256 characters of `0x20–0x7E` except `,` and
/// `=`, the last not a space.
pub fn is_valid_value(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_VALUE_LEN
        && value.last() != Some(&b' ')
        && value.iter().all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

#[cfg(test)]
mod tests;
