//! Listen addresses (`endpoint: 0.0.0.0:4317`) as otelcol writes them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// Splits `host:port`, `[::1]:4317` or `:4317` (all interfaces; the host
/// is then empty) into host and port.
///
/// Errors read `invalid address "0.0.0.0:99999": port out of range`.
pub fn parse_endpoint(text: &str) -> Result<(String, u16), String> {
    let invalid = |why: &str| format!("invalid address {text:?}: {why}");
    if text.contains("://") {
        return Err(invalid("expected host:port without a scheme"));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) =
            rest.split_once(']').ok_or_else(|| invalid("missing \"]\" after the IPv6 host"))?;
        (host, after.strip_prefix(':').ok_or_else(|| invalid("missing port"))?)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or_else(|| invalid("missing port"))?;
        if host.contains(':') {
            return Err(invalid("IPv6 hosts must be in brackets, as in [::1]:4317"));
        }
        (host, port)
    };
    if port.is_empty() {
        return Err(invalid("missing port"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("port must be a number"));
    }
    let port = port.parse::<u16>().map_err(|_| invalid("port out of range"))?;
    Ok((host.to_owned(), port))
}

/// A validated `host:port` to listen on, deserialized through
/// [`parse_endpoint`]. An empty host means all interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenAddress {
    host: String,
    port: u16,
}

impl ListenAddress {
    /// An address from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ListenAddress { host: host.into(), port }
    }

    /// The host, without IPv6 brackets; empty for all interfaces.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for ListenAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_endpoint(text).map(|(host, port)| ListenAddress { host, port })
    }
}

impl fmt::Display for ListenAddress {
    /// `host:port`, bracketing IPv6 hosts (`[::1]:4317`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(AddressVisitor)
    }
}

struct AddressVisitor;

impl Visitor<'_> for AddressVisitor {
    type Value = ListenAddress;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address such as 0.0.0.0:4317")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ListenAddress, E> {
        text.parse().map_err(E::custom)
    }
}

impl Serialize for ListenAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse_endpoint("0.0.0.0:4317"), Ok(("0.0.0.0".into(), 4317)));
        assert_eq!(parse_endpoint("localhost:0"), Ok(("localhost".into(), 0)));
        assert_eq!(parse_endpoint("[::1]:4317"), Ok(("::1".into(), 4317)));
        assert_eq!(parse_endpoint(":4317"), Ok((String::new(), 4317)));
    }

    #[test]
    fn rejected_forms() {
        let err = |text: &str| parse_endpoint(text).unwrap_err();
        assert_eq!(err("0.0.0.0:99999"), "invalid address \"0.0.0.0:99999\": port out of range");
        assert_eq!(err("localhost"), "invalid address \"localhost\": missing port");
        assert_eq!(err("localhost:"), "invalid address \"localhost:\": missing port");
        assert_eq!(err("[::1]"), "invalid address \"[::1]\": missing port");
        assert!(err("::1:4317").contains("brackets"));
        assert!(err("host:http").contains("port must be a number"));
        assert!(err("http://host:1").contains("without a scheme"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["0.0.0.0:4317", "[::1]:4317", ":4317"] {
            assert_eq!(text.parse::<ListenAddress>().unwrap().to_string(), text);
        }
    }
}
