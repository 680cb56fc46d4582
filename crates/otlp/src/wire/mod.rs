//! Validating and counting OTLP protobuf requests without decoding them.
//!
//! A receiver must refuse malformed requests and report how many items it accepted, but the
//! commonest pipeline only forwards telemetry and never needs the objects. [`scan`] walks the
//! protobuf wire format once, checks every field against a static table of the OTLP schema and
//! counts spans, log records or metric data points, without allocating.
//!
//! The guarantee that makes wire-form batches safe: `scan` is at least as strict as prost, so
//! bytes it accepts always decode later. It is stricter where OTLP is: trace ids must be 16
//! bytes and span ids 8 (or empty), groups (wire types 3 and 4) are refused, and messages may
//! nest at most [`MAX_DEPTH`] deep, where prost allows 100.
//!
//! Errors are made on the way back out of the walk, so the happy path never tracks where it is:
//! each level adds its own field name and finds the index of a repeated field by recounting its
//! own bytes, which only happens once, for the one error reported.

use std::fmt;

use crate::signal::Signal;

mod schema;

use schema::{Field, Kind, Role, Schema, Wire};

/// The deepest message nesting [`scan`] accepts, counting the request itself as depth 0.
///
/// Attribute values nest through `kvlist_value` and `array_value` without bound in the schema;
/// the limit keeps the recursive walk's stack small and stays below prost's own limit of 100.
pub const MAX_DEPTH: u32 = 64;

/// What [`scan`] learned about a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scan {
    /// Spans, log records or metric data points, counted as prost would decode them.
    pub items: u64,
}

/// Why [`scan`] refused a request: what is wrong, in which field, at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WireError {
    root: &'static str,
    /// Innermost segment first while the walk unwinds; outermost first once `scan` returns.
    path: Vec<Segment>,
    offset: usize,
    kind: WireErrorKind,
}

/// One step of the path to the field a [`WireError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Known { name: &'static str, index: Option<usize> },
    Unknown(u32),
}

/// The kinds of problem [`scan`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireErrorKind {
    /// A varint runs past the end of its message.
    TruncatedVarint,
    /// A varint is longer than ten bytes or does not fit 64 bits.
    OverlongVarint,
    /// A field key does not fit 32 bits.
    KeyOverflow,
    /// A field key carries field number 0.
    FieldZero,
    /// Wire type 3 or 4: groups are deprecated, and OTLP never uses them.
    Group(u8),
    /// Wire type 6 or 7, which do not exist.
    InvalidWireType(u8),
    /// A known field arrived with a wire type its declaration does not allow.
    WrongWireType { expected: &'static str, actual: u8 },
    /// A length or fixed-width value runs past the end of its message.
    Truncated { needed: u64, available: usize },
    /// A `string` field is not valid UTF-8.
    InvalidUtf8 { valid_up_to: usize },
    /// A trace or span id has a length other than its proper one or zero.
    IdLength { actual: usize, expected: usize },
    /// A packed fixed-width field's length is not a multiple of the element width.
    PackedLength { actual: usize, width: usize },
    /// Messages nest deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// Checks that `bytes` is a valid protobuf `Export*ServiceRequest` for `signal` and counts its
/// items. Empty input is a valid, empty request.
pub fn scan(signal: Signal, bytes: &[u8]) -> Result<Scan, WireError> {
    let root = schema::request(signal);
    match walk(bytes, root, 0, 0) {
        Ok(items) => Ok(Scan { items }),
        Err(mut error) => {
            error.root = root.name;
            error.path.reverse();
            Err(error)
        }
    }
}

// === the walk ===

/// Walks the fields of one message of type `schema` whose encoding is `buf`, which starts at
/// byte `base` of the request, and returns the items counted inside it.
fn walk(buf: &[u8], schema: &'static Schema, base: usize, depth: u32) -> Result<u64, WireError> {
    let mut items = 0;
    // A oneof keeps only its last member, so only the last run of one member's items counts.
    let mut oneof_member = 0;
    let mut oneof_items = 0;
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let (number, wire) =
            key(buf, &mut pos).map_err(|kind| WireError::at(kind, base + start))?;
        let Some(field) = schema.field(number) else {
            skip(buf, &mut pos, wire).map_err(|kind| {
                WireError::at(kind, base + start).within(Segment::Unknown(number))
            })?;
            continue;
        };
        let found = match visit(buf, &mut pos, field, wire, base, start, depth) {
            Ok(found) => found,
            Err(error) => return Err(error.within(segment(buf, start, field))),
        };
        match field.role {
            Role::Plain => items += found,
            Role::Item => items += found + 1,
            Role::Oneof => {
                if oneof_member != field.number {
                    oneof_member = field.number;
                    oneof_items = 0;
                }
                oneof_items += found;
            }
        }
    }
    Ok(items + oneof_items)
}

/// Checks the value of a known `field` whose key, at `start` in `buf` (byte `base` of the
/// request), has just been read, leaving `pos` after the value. Problems with the value as a
/// whole are reported at the key.
fn visit(
    buf: &[u8],
    pos: &mut usize,
    field: &Field,
    wire: Wire,
    base: usize,
    start: usize,
    depth: u32,
) -> Result<u64, WireError> {
    let at = base + start;
    let fail = |kind| WireError::at(kind, at);
    if wire == Wire::Len && field.kind.delimited() {
        let body = delimited(buf, pos).map_err(fail)?;
        let body_start = base + *pos - body.len();
        return check_body(body, field.kind, at, body_start, depth);
    }
    if field.kind.scalar() == Some(wire) {
        skip(buf, pos, wire).map_err(fail)?;
        return Ok(0);
    }
    let expected = field.kind.expected();
    Err(fail(WireErrorKind::WrongWireType { expected, actual: wire.number() }))
}

/// Checks the body of a length-delimited field of kind `kind` whose key is at byte `at` and
/// whose body starts at byte `base`.
fn check_body(
    body: &[u8],
    kind: Kind,
    at: usize,
    base: usize,
    depth: u32,
) -> Result<u64, WireError> {
    let fail = |kind| WireError::at(kind, at);
    match kind {
        // `visit` never passes a scalar here; bytes are opaque.
        Kind::Scalar(_) | Kind::Bytes => Ok(0),
        Kind::PackedOrScalar(element) => packed(body, element).map(|()| 0).map_err(fail),
        Kind::String => utf8(body).map(|()| 0).map_err(fail),
        Kind::Id(expected) if body.is_empty() || body.len() == expected => Ok(0),
        Kind::Id(expected) => Err(fail(WireErrorKind::IdLength { actual: body.len(), expected })),
        Kind::Message(_) if depth >= MAX_DEPTH => Err(fail(WireErrorKind::TooDeep)),
        Kind::Message(schema) => walk(body, schema, base, depth + 1),
    }
}

/// Reads a field key, refusing what prost refuses and groups besides.
#[inline]
fn key(buf: &[u8], pos: &mut usize) -> Result<(u32, Wire), WireErrorKind> {
    let key = varint(buf, pos)?;
    let Ok(key) = u32::try_from(key) else {
        return Err(WireErrorKind::KeyOverflow);
    };
    let wire = match key & 7 {
        0 => Wire::Varint,
        1 => Wire::I64,
        2 => Wire::Len,
        5 => Wire::I32,
        group @ (3 | 4) => return Err(WireErrorKind::Group(group as u8)),
        other => return Err(WireErrorKind::InvalidWireType(other as u8)),
    };
    if key >> 3 == 0 {
        return Err(WireErrorKind::FieldZero);
    }
    Ok((key >> 3, wire))
}

/// Moves `pos` past a value of wire type `wire` without looking inside it.
#[inline]
fn skip(buf: &[u8], pos: &mut usize, wire: Wire) -> Result<(), WireErrorKind> {
    match wire {
        Wire::Varint => varint(buf, pos).map(drop),
        Wire::I64 => fixed(buf, pos, 8),
        Wire::I32 => fixed(buf, pos, 4),
        Wire::Len => delimited(buf, pos).map(drop),
    }
}

#[inline]
fn fixed(buf: &[u8], pos: &mut usize, width: usize) -> Result<(), WireErrorKind> {
    let available = buf.len().saturating_sub(*pos);
    if available < width {
        return Err(WireErrorKind::Truncated { needed: width as u64, available });
    }
    *pos += width;
    Ok(())
}

/// Reads a length prefix and returns the bytes it covers, leaving `pos` after them.
#[inline]
fn delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], WireErrorKind> {
    let len = varint(buf, pos)?;
    let rest = buf.get(*pos..).unwrap_or_default();
    let truncated = WireErrorKind::Truncated { needed: len, available: rest.len() };
    let Ok(len) = usize::try_from(len) else {
        return Err(truncated);
    };
    let Some(body) = rest.get(..len) else {
        return Err(truncated);
    };
    *pos += len;
    Ok(body)
}

/// Reads a varint. Most varints in OTLP (keys, small lengths) are one byte, so that case is
/// kept apart from the loop.
#[inline]
fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireErrorKind> {
    match buf.get(*pos) {
        Some(&byte) if byte < 0x80 => {
            *pos += 1;
            Ok(u64::from(byte))
        }
        Some(_) => varint_long(buf, pos),
        None => Err(WireErrorKind::TruncatedVarint),
    }
}

fn varint_long(buf: &[u8], pos: &mut usize) -> Result<u64, WireErrorKind> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&byte) = buf.get(*pos + i) else {
            return Err(WireErrorKind::TruncatedVarint);
        };
        // The tenth byte holds bit 63 only; prost refuses anything more, and so must we.
        if i == 9 && byte > 1 {
            return Err(WireErrorKind::OverlongVarint);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *pos += i + 1;
            return Ok(value);
        }
    }
    Err(WireErrorKind::OverlongVarint)
}

/// Checks the body of a packed repeated scalar field the way prost decodes it.
fn packed(body: &[u8], element: Wire) -> Result<(), WireErrorKind> {
    let width = match element {
        Wire::I64 => 8,
        Wire::I32 => 4,
        Wire::Varint => {
            let mut pos = 0;
            while pos < body.len() {
                varint(body, &mut pos)?;
            }
            return Ok(());
        }
        // The schema never declares a packed length-delimited element.
        Wire::Len => return Ok(()),
    };
    if !body.len().is_multiple_of(width) {
        return Err(WireErrorKind::PackedLength { actual: body.len(), width });
    }
    Ok(())
}

#[inline]
fn utf8(body: &[u8]) -> Result<(), WireErrorKind> {
    // Attribute keys and values are nearly always ASCII, which is cheaper to confirm.
    if body.is_ascii() {
        return Ok(());
    }
    match std::str::from_utf8(body) {
        Ok(_) => Ok(()),
        Err(error) => Err(WireErrorKind::InvalidUtf8 { valid_up_to: error.valid_up_to() }),
    }
}

// === error reporting ===

/// The path segment for `field`, whose key starts at `start` in `buf`. A repeated field's index
/// is how often it occurred before; those bytes were already walked, so recounting cannot fail.
fn segment(buf: &[u8], start: usize, field: &Field) -> Segment {
    let index =
        field.repeated.then(|| occurrences(buf.get(..start).unwrap_or_default(), field.number));
    Segment::Known { name: field.name, index }
}

fn occurrences(buf: &[u8], number: u32) -> usize {
    let mut count = 0;
    let mut pos = 0;
    while pos < buf.len() {
        let Ok((found, wire)) = key(buf, &mut pos) else { break };
        count += usize::from(found == number);
        if skip(buf, &mut pos, wire).is_err() {
            break;
        }
    }
    count
}

impl WireError {
    fn at(kind: WireErrorKind, offset: usize) -> WireError {
        WireError { root: "", path: Vec::new(), offset, kind }
    }

    fn within(mut self, segment: Segment) -> WireError {
        self.path.push(segment);
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> WireErrorKind {
        self.kind
    }

    /// The byte of the request where the offending field or value starts.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The field the error is about, as in
    /// `resource_spans[0].scope_spans[1].spans[3].trace_id`; the request's message name when the
    /// problem is in the request's own framing.
    pub fn path(&self) -> String {
        if self.path.is_empty() {
            return self.root.to_owned();
        }
        let mut path = String::new();
        for (i, segment) in self.path.iter().enumerate() {
            if i > 0 {
                path.push('.');
            }
            match segment {
                Segment::Known { name, index: Some(index) } => {
                    path.push_str(&format!("{name}[{index}]"));
                }
                Segment::Known { name, index: None } => path.push_str(name),
                Segment::Unknown(number) => path.push_str(&format!("<field {number}>")),
            }
        }
        path
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (at byte {})", self.path(), self.kind, self.offset)
    }
}

impl fmt::Display for WireErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireErrorKind::TruncatedVarint => f.write_str("varint runs past the end"),
            WireErrorKind::OverlongVarint => f.write_str("varint does not fit 64 bits"),
            WireErrorKind::KeyOverflow => f.write_str("field key does not fit 32 bits"),
            WireErrorKind::FieldZero => f.write_str("field number 0"),
            WireErrorKind::Group(wire) => write!(f, "group (wire type {wire}) is not allowed"),
            WireErrorKind::InvalidWireType(wire) => write!(f, "invalid wire type {wire}"),
            WireErrorKind::WrongWireType { expected, actual } => {
                let actual_name = Wire::from_number(actual).map_or("invalid", Wire::name);
                write!(f, "wire type {actual} ({actual_name}), expected {expected}")
            }
            WireErrorKind::Truncated { needed, available } => {
                write!(f, "length {needed} runs past the end ({available} bytes left)")
            }
            WireErrorKind::InvalidUtf8 { valid_up_to } => {
                write!(f, "invalid UTF-8 after {valid_up_to} bytes")
            }
            WireErrorKind::IdLength { actual, expected } => {
                write!(f, "length {actual}, expected {expected} bytes or empty")
            }
            WireErrorKind::PackedLength { actual, width } => {
                write!(f, "packed length {actual} is not a multiple of {width}")
            }
            WireErrorKind::TooDeep => write!(f, "messages nested deeper than {MAX_DEPTH}"),
        }
    }
}

#[cfg(test)]
mod tests;
