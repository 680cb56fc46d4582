//! Optional whitespace (RFC 9110 `OWS`: spaces and horizontal tabs) shared by the parsers.

/// Whether `byte` is `SP` or `HTAB`.
pub(crate) fn is_ows(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// `text` without leading and trailing spaces and tabs.
pub(crate) fn trim(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|&b| !is_ows(b)).unwrap_or(text.len());
    let end = text.iter().rposition(|&b| !is_ows(b)).map_or(start, |last| last + 1);
    text.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::trim;

    #[test]
    fn trims_spaces_and_tabs_only() {
        assert_eq!(trim(b" \t a b \t"), b"a b");
        assert_eq!(trim(b"\t \t"), b"");
        assert_eq!(trim(b""), b"");
        assert_eq!(trim(b"\na\r"), b"\na\r");
    }
}
