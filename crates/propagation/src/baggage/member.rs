//! Baggage members and properties, and the grammar and percent-encoding of their text.

use std::fmt;

use super::BaggageError;
use crate::ows;

/// A property of a member: `;key` or `;key=value`, text as received.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Property {
    /// The property key (a token).
    pub key: String,
    /// The raw value, if the property has `=`.
    pub value: Option<String>,
}

/// One baggage entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    key: String,
    value: String,
    properties: Vec<Property>,
}

// === impl Member ===

impl Member {
    /// A member with a token `key` and any `value` (percent-encoded on output).
    pub fn new(key: &str, value: &str) -> Result<Self, BaggageError> {
        if !is_token(key.as_bytes()) {
            return Err(BaggageError::InvalidKey);
        }
        Ok(Self { key: key.to_owned(), value: value.to_owned(), properties: Vec::new() })
    }

    /// Adds a property; its value is written as given, so it must be `baggage-octet`s.
    pub fn with_property(mut self, key: &str, value: Option<&str>) -> Result<Self, BaggageError> {
        let value_ok = value.is_none_or(|v| v.bytes().all(is_baggage_octet));
        if !is_token(key.as_bytes()) || !value_ok {
            return Err(BaggageError::InvalidProperty);
        }
        self.properties.push(Property { key: key.to_owned(), value: value.map(str::to_owned) });
        Ok(self)
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The decoded value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The properties, in order.
    pub fn properties(&self) -> &[Property] {
        &self.properties
    }

    /// Length of the encoded member in bytes.
    pub(super) fn encoded_len(&self) -> usize {
        crate::header::display_len(self)
    }

    /// Parses one trimmed, non-empty member.
    pub(super) fn parse(raw: &[u8]) -> Result<Self, BaggageError> {
        let mut parts = raw.split(|&b| b == b';');
        let pair = parts.next().unwrap_or_default();
        let equals = pair.iter().position(|&b| b == b'=').ok_or(BaggageError::MissingEquals)?;
        let (key, value) = pair.split_at(equals);
        let (key, value) = (ows::trim(key), ows::trim(value.get(1..).unwrap_or_default()));
        if !is_token(key) {
            return Err(BaggageError::InvalidKey);
        }
        if !value.iter().all(|&b| is_baggage_octet(b)) {
            return Err(BaggageError::InvalidValue);
        }
        let mut properties = Vec::new();
        for part in parts {
            let part = ows::trim(part);
            if part.is_empty() {
                continue;
            }
            properties.push(parse_property(part)?);
        }
        Ok(Self { key: ascii(key), value: percent_decode(value), properties })
    }
}

impl fmt::Display for Member {
    /// `key=value;prop;prop=value` with the value percent-encoded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, percent_encode(&self.value))?;
        for property in &self.properties {
            match &property.value {
                Some(value) => write!(f, ";{}={value}", property.key)?,
                None => write!(f, ";{}", property.key)?,
            }
        }
        Ok(())
    }
}

fn parse_property(raw: &[u8]) -> Result<Property, BaggageError> {
    let (key, value) = match raw.iter().position(|&b| b == b'=') {
        Some(equals) => {
            let (key, value) = raw.split_at(equals);
            (ows::trim(key), Some(ows::trim(value.get(1..).unwrap_or_default())))
        }
        None => (raw, None),
    };
    let value_ok = value.is_none_or(|v| v.iter().all(|&b| is_baggage_octet(b)));
    if !is_token(key) || !value_ok {
        return Err(BaggageError::InvalidProperty);
    }
    Ok(Property { key: ascii(key), value: value.map(ascii) })
}

/// RFC 9110 `tchar`.
fn is_token(text: &[u8]) -> bool {
    !text.is_empty()
        && text.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// `baggage-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Bytes already checked to be ASCII, as a `String`.
fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Percent-encodes every byte of `value` outside `baggage-octet`, and `%`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if is_baggage_octet(byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Decodes `%XX` escapes (either case); a `%` without two hex digits stays as it is; invalid
/// UTF-8 becomes U+FFFD.
pub fn percent_decode(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = match tail {
            [high, low, ..] if byte == b'%' => hex_value(*high).zip(hex_value(*low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push((high << 4) | low);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|v| u8::try_from(v).ok())
}
