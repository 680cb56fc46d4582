//! [`SamplingPercentage`]: a percentage from 0 to 100 in 0.01 steps, as Istio's
//! `randomSamplingPercentage` / `defaultConfig.tracing.sampling` and Envoy's `Percent` write it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A sampling rate in percent, kept in hundredths of a percent (0 to 10 000).
///
/// Envoy converts every tracing percentage to a numerator out of 10 000
/// (`PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT`, mesh-tracing-spec §1.6) and Istio documents
/// the values as "[0.00-100.00], in 0.01% increments"; finer values are rounded to the nearest
/// step as Envoy does (`12.345` → 12.35 %). Values outside 0 to 100, and NaN, are rejected.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SamplingPercentage(u16);

impl SamplingPercentage {
    /// 0 %: never sample.
    pub const ZERO: SamplingPercentage = SamplingPercentage(0);
    /// 1 %: Istio's default (`defaultConfig.tracing.sampling` "Default is 1.0", env
    /// `PILOT_TRACE_SAMPLING` default 1.0; mesh-tracing-spec §2.3).
    pub const ISTIO_DEFAULT: SamplingPercentage = SamplingPercentage(100);
    /// 100 %: always sample.
    pub const HUNDRED: SamplingPercentage = SamplingPercentage(10_000);

    /// The rate for `percent`, rounded to 0.01; errors read `150 is out of range: expected 0 to
    /// 100`.
    pub fn from_percent(percent: f64) -> Result<SamplingPercentage, String> {
        if percent.is_nan() {
            return Err("nan is not a number: expected 0 to 100".to_owned());
        }
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!("{} is out of range: expected 0 to 100", number_text(percent)));
        }
        // In range, so the rounded value fits: at most 10 000.
        let hundredths = (percent * 100.0).round();
        Ok(SamplingPercentage(hundredths as u16))
    }

    /// The rate in hundredths of a percent, 0 to 10 000: Envoy's numerator out of 10 000.
    pub fn hundredths(self) -> u16 {
        self.0
    }

    /// The rate in percent, 0.0 to 100.0.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

/// `150`, `150.5`, `-1`: how a number is written in our messages.
fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        value.to_string()
    }
}

impl fmt::Display for SamplingPercentage {
    /// `1%`, `12.35%`, `100%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, rest) = (self.0 / 100, self.0 % 100);
        match rest {
            0 => write!(f, "{whole}%"),
            r if r % 10 == 0 => write!(f, "{whole}.{}%", r / 10),
            r => write!(f, "{whole}.{r:02}%"),
        }
    }
}

impl fmt::Debug for SamplingPercentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SamplingPercentage({self})")
    }
}

impl<'de> Deserialize<'de> for SamplingPercentage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PercentVisitor)
    }
}

struct PercentVisitor;

impl Visitor<'_> for PercentVisitor {
    type Value = SamplingPercentage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percentage from 0 to 100")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<SamplingPercentage, E> {
        SamplingPercentage::from_percent(value).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<SamplingPercentage, E> {
        if !(0..=100).contains(&value) {
            return Err(E::custom(format!("{value} is out of range: expected 0 to 100")));
        }
        self.visit_f64(value as f64)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<SamplingPercentage, E> {
        match i64::try_from(value) {
            Ok(value) => self.visit_i64(value),
            Err(_) => Err(E::custom(format!("{value} is out of range: expected 0 to 100"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_hundredths_like_envoy() {
        assert_eq!(SamplingPercentage::from_percent(1.0).unwrap().hundredths(), 100);
        assert_eq!(SamplingPercentage::from_percent(12.345).unwrap().hundredths(), 1235);
        assert_eq!(SamplingPercentage::from_percent(0.05).unwrap().hundredths(), 5);
        assert_eq!(SamplingPercentage::from_percent(100.0).unwrap(), SamplingPercentage::HUNDRED);
    }

    #[test]
    fn rejects_out_of_range() {
        let err = |p: f64| SamplingPercentage::from_percent(p).unwrap_err();
        assert_eq!(err(150.0), "150 is out of range: expected 0 to 100");
        assert_eq!(err(100.5), "100.5 is out of range: expected 0 to 100");
        assert_eq!(err(-1.0), "-1 is out of range: expected 0 to 100");
        assert_eq!(err(f64::NAN), "nan is not a number: expected 0 to 100");
    }

    #[test]
    fn displays_as_percent() {
        let show = |p: f64| SamplingPercentage::from_percent(p).unwrap().to_string();
        assert_eq!(show(1.0), "1%");
        assert_eq!(show(12.5), "12.5%");
        assert_eq!(show(0.05), "0.05%");
        assert_eq!(show(100.0), "100%");
    }
}
