//! [`Duration`]: a `std::time::Duration` written as Go writes durations.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// A duration in a config field: `200ms`, `5s`, `1m30s`, `1h`, `1.5s`,
/// `100us` (or `100µs`), `10ns`, parsed as Go's `time.ParseDuration` does.
/// A bare integer (`timeout: 5000`) means nanoseconds, as in Go.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl fmt::Debug for Duration {
    /// `Duration(1m30s)`: the Go form is what the config file said.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({self})")
    }
}

impl Duration {
    /// The wrapped `std::time::Duration`.
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// The message for any text that is not a Go duration.
fn malformed(text: &str) -> String {
    format!("invalid duration {text:?}: expected a number with a unit such as 200ms, 5s or 1m")
}

/// Nanoseconds per unit, as Go spells units.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string; negative durations are rejected because
/// no collector setting means anything by them.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(malformed(text));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole = &rest[..whole_len];
        rest = &rest[whole_len..];
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            fraction = &after_dot[..len];
            rest = &after_dot[len..];
        }
        if whole.is_empty() && fraction.is_empty() {
            return Err(malformed(text));
        }
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = unit_nanos(&rest[..unit_len]).ok_or_else(|| malformed(text))?;
        rest = &rest[unit_len..];
        total = total
            .checked_add(component_nanos(whole, fraction, scale).ok_or_else(|| too_large(text))?)
            .ok_or_else(|| too_large(text))?;
        // Go's limit: durations are nanoseconds in an i64.
        if total > i64::MAX as u128 {
            return Err(too_large(text));
        }
    }
    if negative && total > 0 {
        return Err(format!("invalid duration {text:?}: must not be negative"));
    }
    let nanos = u64::try_from(total).map_err(|_| too_large(text))?;
    Ok(std::time::Duration::from_nanos(nanos))
}

fn too_large(text: &str) -> String {
    format!("invalid duration {text:?}: too large (at most about 292 years)")
}

/// `whole.fraction` units in nanoseconds; the fraction is truncated to
/// whole nanoseconds, as Go does.
fn component_nanos(whole: &str, fraction: &str, scale: u128) -> Option<u128> {
    let whole_value = if whole.is_empty() { 0 } else { whole.parse::<u128>().ok()? };
    // Digits beyond 18 cannot change a nanosecond count below Go's limit.
    let fraction = &fraction[..fraction.len().min(18)];
    let fraction_value = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u128>().ok()? * scale / 10u128.pow(fraction.len() as u32)
    };
    whole_value.checked_mul(scale)?.checked_add(fraction_value)
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(Duration)
    }
}

impl fmt::Display for Duration {
    /// Go's `Duration.String()` form: `1h0m0s`, `1m30s`, `1.5s`, `200ms`,
    /// `100µs`, `10ns`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        match nanos {
            0 => f.write_str("0s"),
            1..1_000 => write!(f, "{nanos}ns"),
            1_000..1_000_000 => write!(f, "{}\u{b5}s", decimal(nanos, 1_000)),
            1_000_000..1_000_000_000 => write!(f, "{}ms", decimal(nanos, 1_000_000)),
            _ => {
                let secs = nanos / 1_000_000_000;
                let (hours, minutes) = (secs / 3600, secs % 3600 / 60);
                if hours > 0 {
                    write!(f, "{hours}h{minutes}m")?;
                } else if minutes > 0 {
                    write!(f, "{minutes}m")?;
                }
                let rest = secs % 60 * 1_000_000_000 + nanos % 1_000_000_000;
                write!(f, "{}s", decimal(rest, 1_000_000_000))
            }
        }
    }
}

/// `value / unit` with the remainder as decimals, trailing zeros dropped.
fn decimal(value: u128, unit: u128) -> String {
    let (whole, rest) = (value / unit, value % unit);
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 200ms, 5s or 1m")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<Duration, E> {
        Ok(Duration(std::time::Duration::from_nanos(nanos)))
    }

    fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<Duration, E> {
        u64::try_from(nanos)
            .map(|n| Duration(std::time::Duration::from_nanos(n)))
            .map_err(|_| E::custom(format!("invalid duration {nanos}: must not be negative")))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u128, String> {
        parse_duration(text).map(|d| d.as_nanos())
    }

    #[test]
    fn go_forms() {
        assert_eq!(parse("200ms"), Ok(200_000_000));
        assert_eq!(parse("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse(".5s"), Ok(500_000_000));
        assert_eq!(parse("100us"), Ok(100_000));
        assert_eq!(parse("100µs"), Ok(100_000));
        assert_eq!(parse("100μs"), Ok(100_000));
        assert_eq!(parse("10ns"), Ok(10));
        assert_eq!(parse("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("-0s"), Ok(0));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            parse("5 seconds"),
            Err("invalid duration \"5 seconds\": expected a number with a unit such as 200ms, 5s or 1m".into())
        );
        for bad in ["", "5", "s", "1.s.", "5x", "1h-5m", "-"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("-5s"), Err("invalid duration \"-5s\": must not be negative".into()));
        assert!(parse("9999999999h").unwrap_err().contains("too large"));
    }

    #[test]
    fn displays_like_go() {
        let show = |text: &str| text.parse::<Duration>().unwrap().to_string();
        assert_eq!(show("1h"), "1h0m0s");
        assert_eq!(show("90s"), "1m30s");
        assert_eq!(show("1.5s"), "1.5s");
        assert_eq!(show("200ms"), "200ms");
        assert_eq!(show("1500us"), "1.5ms");
        assert_eq!(show("100us"), "100µs");
        assert_eq!(show("10ns"), "10ns");
        assert_eq!(show("0s"), "0s");
        assert_eq!(show("2h3m4.005s"), "2h3m4.005s");
    }
}
