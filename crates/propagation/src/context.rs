//! The identifiers every format carries: [`TraceId`], [`SpanId`], [`TraceFlags`] and the
//! [`SpanContext`] that groups them.
//!
//! The id types cannot hold the all-zero value: W3C Trace Context and B3 both call it invalid, so
//! a value of these types is always one that may be propagated.

use std::fmt;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of one lowercase hex digit (`0-9`, `a-f`); uppercase is not accepted.
pub(crate) fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly `2 * N` lowercase hex digits into `N` bytes.
pub(crate) fn decode_lower_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (lower_hex_value(*high)? << 4) | lower_hex_value(*low)?;
    }
    Some(out)
}

/// Appends `bytes` as lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// `N` bytes as `M = 2N` lowercase hex digits, on the stack: ids are written into every
/// forwarded request, and a `String` per id would be an allocation each.
pub(crate) fn hex_digits<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    const { assert!(M == 2 * N) };
    let mut out = [0u8; M];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
    }
    out
}

/// Hex digits as a `str` (they are ASCII).
fn hex_str(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).unwrap_or_default()
}

// === impl TraceId ===

/// A 16-byte trace id; never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// Wraps 16 bytes; `None` for the invalid all-zero id.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }

    /// Builds an id from a 128-bit number (big-endian, as the hex form reads); `None` for zero.
    /// Feed it a random value to start a trace.
    pub fn from_u128(value: u128) -> Option<Self> {
        Self::from_bytes(value.to_be_bytes())
    }

    /// Parses exactly 32 lowercase hex digits; `None` for anything else or all zeros.
    pub fn from_hex(text: &str) -> Option<Self> {
        Self::from_hex_bytes(text.as_bytes())
    }

    pub(crate) fn from_hex_bytes(text: &[u8]) -> Option<Self> {
        Self::from_bytes(decode_lower_hex::<16>(text)?)
    }

    /// Parses a 64-bit id (16 lowercase hex digits) left-padded with zeros to 128 bits, as B3
    /// and Zipkin do.
    pub(crate) fn from_hex64_bytes(text: &[u8]) -> Option<Self> {
        let low = decode_lower_hex::<8>(text)?;
        let mut bytes = [0u8; 16];
        for (dst, src) in bytes.iter_mut().skip(8).zip(low) {
            *dst = src;
        }
        Self::from_bytes(bytes)
    }

    /// The raw bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The id as a 128-bit number (big-endian).
    pub fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The 32 lowercase hex digits, without allocating.
    pub fn to_hex(self) -> [u8; 32] {
        hex_digits(&self.0)
    }
}

impl fmt::Display for TraceId {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(hex_str(&self.to_hex()))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

// === impl SpanId ===

/// An 8-byte span id (W3C calls the incoming one `parent-id`); never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

impl SpanId {
    /// Wraps 8 bytes; `None` for the invalid all-zero id.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(Self(bytes))
    }

    /// Builds an id from a 64-bit number (big-endian); `None` for zero.
    pub fn from_u64(value: u64) -> Option<Self> {
        Self::from_bytes(value.to_be_bytes())
    }

    /// Parses exactly 16 lowercase hex digits; `None` for anything else or all zeros.
    pub fn from_hex(text: &str) -> Option<Self> {
        Self::from_hex_bytes(text.as_bytes())
    }

    pub(crate) fn from_hex_bytes(text: &[u8]) -> Option<Self> {
        Self::from_bytes(decode_lower_hex::<8>(text)?)
    }

    /// The raw bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// The id as a 64-bit number (big-endian).
    pub fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// The 16 lowercase hex digits, without allocating.
    pub fn to_hex(self) -> [u8; 16] {
        hex_digits(&self.0)
    }
}

impl fmt::Display for SpanId {
    /// 16 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(hex_str(&self.to_hex()))
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

// === impl TraceFlags ===

/// The W3C `trace-flags` byte, holding only the bits the specification defines: `sampled`
/// (Level 1) and `random` (Level 2). Reserved bits are cleared on the way in, because senders
/// "MUST set those to zero".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// Bit 0: the caller may have recorded trace data.
    pub const SAMPLED: u8 = 0x01;
    /// Bit 1 (Level 2): at least the right-most 7 bytes of the trace id are random.
    pub const RANDOM: u8 = 0x02;
    /// The bits this crate knows; all others are reserved.
    pub const KNOWN: u8 = Self::SAMPLED | Self::RANDOM;

    /// No flags set.
    pub const NONE: Self = Self(0);

    /// Keeps the known bits of `bits` and clears the reserved ones.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & Self::KNOWN)
    }

    /// Flags with the given sampled and random bits.
    pub fn new(sampled: bool, random: bool) -> Self {
        Self::NONE.with_sampled(sampled).with_random(random)
    }

    /// The flags byte as written on the wire.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether the sampled bit is set.
    pub fn sampled(self) -> bool {
        self.0 & Self::SAMPLED != 0
    }

    /// Whether the Level 2 random-trace-id bit is set.
    pub fn random(self) -> bool {
        self.0 & Self::RANDOM != 0
    }

    /// A copy with the sampled bit set or cleared.
    #[must_use]
    pub fn with_sampled(self, sampled: bool) -> Self {
        if sampled { Self(self.0 | Self::SAMPLED) } else { Self(self.0 & !Self::SAMPLED) }
    }

    /// A copy with the random bit set or cleared.
    #[must_use]
    pub fn with_random(self, random: bool) -> Self {
        if random { Self(self.0 | Self::RANDOM) } else { Self(self.0 & !Self::RANDOM) }
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

// === impl SpanContext ===

/// What a propagation header carries about the caller's span: the trace, the caller's span id
/// and the flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SpanContext {
    /// The trace every span of the request belongs to.
    pub trace_id: TraceId,
    /// The span that sent the header (W3C `parent-id`, B3 `SpanId`).
    pub span_id: SpanId,
    /// Sampled and random bits.
    pub flags: TraceFlags,
}

impl SpanContext {
    /// Groups the three parts.
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        Self { trace_id, span_id, flags }
    }

    /// The context of a child span: same trace and flags (the random bit MUST be copied
    /// unchanged while the trace id is), new span id.
    #[must_use]
    pub fn child(self, span_id: SpanId) -> Self {
        Self { span_id, ..self }
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags.sampled()
    }
}
