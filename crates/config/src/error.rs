//! The error types every part of the crate reports with.
//!
//! A configuration usually has more than one mistake, and fixing them one
//! run at a time is tedious, so most functions return [`ConfigErrors`] (a
//! list) rather than stopping at the first [`ConfigError`].

use std::fmt;

/// One problem in a configuration, located by its dotted key path.
///
/// `path` is the dotted key path of the offending value, for example
/// `receivers.otlp.protocols.grpc.endpoint`, with sequence elements written
/// as `key[3]`. It is empty when the problem is not tied to a key (for
/// example a file that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Dotted key path of the offending value; empty when there is none.
    pub path: String,
    /// What is wrong, in lowercase, naming the bad value and what was expected.
    pub message: String,
}

impl ConfigError {
    /// Creates an error at `path` (which may be empty).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A list of [`ConfigError`]s; displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Creates an empty list.
    pub fn new() -> Self {
        ConfigErrors(Vec::new())
    }

    /// Appends one error.
    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    /// Whether the list holds no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of errors in the list.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the errors in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// `Ok(())` when the list is empty, otherwise `Err(self)`; handy at the
    /// end of a validation pass that pushed errors as it went.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl Extend<ConfigError> for ConfigErrors {
    fn extend<I: IntoIterator<Item = ConfigError>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl FromIterator<ConfigError> for ConfigErrors {
    fn from_iter<I: IntoIterator<Item = ConfigError>>(iter: I) -> Self {
        ConfigErrors(iter.into_iter().collect())
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_path() {
        let with = ConfigError::new("a.b", "bad");
        let without = ConfigError::new("", "cannot read file");
        assert_eq!(with.to_string(), "a.b: bad");
        assert_eq!(without.to_string(), "cannot read file");
    }

    #[test]
    fn list_displays_one_per_line() {
        let mut errors = ConfigErrors::new();
        assert_eq!(errors.clone().into_result(), Ok(()));
        errors.push(ConfigError::new("a", "x"));
        errors.extend([ConfigError::new("b", "y")]);
        assert_eq!(errors.to_string(), "a: x\nb: y");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors.iter().count(), 2);
        assert!(errors.into_result().is_err());
    }
}
