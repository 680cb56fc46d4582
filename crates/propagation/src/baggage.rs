//! The W3C `baggage` header: application key/value pairs with optional properties.
//!
//! ```text
//! baggage: userId=alice,serverNode=DF%2028;zone=eu;canary, isProduction=false
//! ```
//!
//! * Keys are RFC 9110 tokens. Values are percent-decoded into UTF-8 (invalid UTF-8 becomes
//!   U+FFFD; a `%` not followed by two hex digits is kept as is) and percent-encoded again on
//!   output for every byte outside `baggage-octet` and for `%`.
//! * Properties (`;key` or `;key=value`) are kept with their text as received: the specification
//!   gives them no meaning.
//! * All `baggage` header fields are combined. Spaces and tabs around members, keys, values and
//!   properties are ignored; empty members are skipped.
//! * A member that does not follow the grammar is dropped, the rest are kept.
//! * Limits: members are kept in order while there are at most [`MAX_MEMBERS`] and the header is
//!   at most [`MAX_BYTES`] bytes, the sizes up to which the specification requires everything to be
//!   propagated. A member that does not fit is dropped whole, never cut.
//!
//! [`Baggage`] is for reading and changing baggage; [`pass_through`] forwards the valid members
//! byte for byte, for a proxy that only relays them.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::ows;

mod member;

pub use member::{Member, Property, percent_decode, percent_encode};

/// The header name.
pub const HEADER: HeaderName = HeaderName::from_static("baggage");
/// Most members kept.
pub const MAX_MEMBERS: usize = 64;
/// Longest header kept, in bytes, counting the `,` separators.
pub const MAX_BYTES: usize = 8192;

/// Why a member or property was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BaggageError {
    /// A member without `=` after its key.
    MissingEquals,
    /// A key that is not a token.
    InvalidKey,
    /// A value with characters outside `baggage-octet`.
    InvalidValue,
    /// A property with a bad key or value.
    InvalidProperty,
    /// Adding the member would pass [`MAX_MEMBERS`] or [`MAX_BYTES`].
    OverLimit,
}

impl fmt::Display for BaggageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::MissingEquals => "member without '='",
            Self::InvalidKey => "key is not a token",
            Self::InvalidValue => "value has characters outside baggage-octet",
            Self::InvalidProperty => "invalid property",
            Self::OverLimit => "more than 64 members or 8192 bytes",
        };
        write!(f, "invalid baggage: {text}")
    }
}

impl std::error::Error for BaggageError {}

/// How many members a parse left out, for counting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Members that did not follow the grammar.
    pub invalid: usize,
    /// Valid members that did not fit within the limits.
    pub over_limit: usize,
}

/// The result of parsing: the baggage kept and what was dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The members kept.
    pub baggage: Baggage,
    /// The members dropped.
    pub dropped: Dropped,
}

// === impl Baggage ===

/// The members of a `baggage` header, in order. Keys may repeat, as the specification allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Baggage {
    members: Vec<Member>,
}

impl Baggage {
    /// No members, as a constant.
    pub const EMPTY: Self = Self { members: Vec::new() };

    /// No members.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one header value.
    pub fn parse(value: &str) -> Parsed {
        Self::parse_fields([value.as_bytes()])
    }

    /// Parses several header field values, combined in order.
    pub fn parse_fields<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Parsed {
        let mut parsed = Parsed::default();
        let mut limits = Limits::default();
        for raw in members(fields) {
            match Member::parse(raw) {
                Err(_) => parsed.dropped.invalid += 1,
                Ok(member) if limits.admit(member.encoded_len()) => {
                    parsed.baggage.members.push(member);
                }
                Ok(_) => parsed.dropped.over_limit += 1,
            }
        }
        parsed
    }

    /// Reads every `baggage` header of a request.
    pub fn extract(headers: &HeaderMap) -> Parsed {
        Self::parse_fields(headers.get_all(&HEADER).iter().map(HeaderValue::as_bytes))
    }

    /// The value of the first member named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.member(key).map(Member::value)
    }

    /// The first member named `key`.
    pub fn member(&self, key: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.key() == key)
    }

    /// The members, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds `member`, replacing every member with its key (it takes the place of the first one).
    /// Fails, leaving the baggage unchanged, if the result would pass the limits.
    pub fn insert(&mut self, member: Member) -> Result<(), BaggageError> {
        let mut next = self.members.clone();
        match next.iter().position(|m| m.key() == member.key()) {
            Some(index) => {
                let key = member.key().to_owned();
                if let Some(slot) = next.get_mut(index) {
                    *slot = member;
                }
                let mut seen = false;
                next.retain(|m| m.key() != key || !std::mem::replace(&mut seen, true));
            }
            None => next.push(member),
        }
        let candidate = Self { members: next };
        if candidate.len() > MAX_MEMBERS || candidate.header_len() > MAX_BYTES {
            return Err(BaggageError::OverLimit);
        }
        *self = candidate;
        Ok(())
    }

    /// Removes every member named `key`; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.members.len();
        self.members.retain(|m| m.key() != key);
        before - self.members.len()
    }

    /// Length of the formatted header in bytes.
    pub fn header_len(&self) -> usize {
        crate::header::display_len(self)
    }

    /// The header value, `None` when there are no members.
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        if self.is_empty() {
            return None;
        }
        HeaderValue::try_from(self.to_string()).ok()
    }

    /// Sets the `baggage` header to these members, or removes it when there are none.
    pub fn inject(&self, headers: &mut HeaderMap) {
        crate::header::set_or_remove(headers, HEADER, self.to_header_value());
    }
}

impl fmt::Display for Baggage {
    /// Members joined by `,` without whitespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, member) in self.members.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{member}")?;
        }
        Ok(())
    }
}

/// The valid members of every `baggage` header of `headers`, byte for byte as received (trimmed
/// of whitespace), within the limits: what a proxy forwards when it does not change baggage.
/// `None` when no member is left.
pub fn pass_through(headers: &HeaderMap) -> (Option<HeaderValue>, Dropped) {
    let mut out: Vec<u8> = Vec::new();
    let mut dropped = Dropped::default();
    let mut limits = Limits::default();
    for raw in members(headers.get_all(&HEADER).iter().map(HeaderValue::as_bytes)) {
        if Member::parse(raw).is_err() {
            dropped.invalid += 1;
        } else if limits.admit(raw.len()) {
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(raw);
        } else {
            dropped.over_limit += 1;
        }
    }
    let value = if out.is_empty() { None } else { HeaderValue::from_bytes(&out).ok() };
    (value, dropped)
}

/// Running totals for the limits.
#[derive(Default)]
struct Limits {
    members: usize,
    bytes: usize,
}

impl Limits {
    /// Counts a member of `len` bytes if it fits.
    fn admit(&mut self, len: usize) -> bool {
        let bytes = self.bytes + len + usize::from(self.members > 0);
        if self.members >= MAX_MEMBERS || bytes > MAX_BYTES {
            return false;
        }
        self.members += 1;
        self.bytes = bytes;
        true
    }
}

/// The trimmed, non-empty members of several header fields.
fn members<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    fields
        .into_iter()
        .flat_map(|field| field.split(|&b| b == b','))
        .map(ows::trim)
        .filter(|member| !member.is_empty())
}

#[cfg(test)]
mod tests;
