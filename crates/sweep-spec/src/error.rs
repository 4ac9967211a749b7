//! Errors in a spec: what is wrong, at which key, and where that key stands in the file.

use std::fmt;

use crate::expr::ExprError;
use crate::source::{KeyPath, Location};

/// A spec that cannot be used, with the key it is about and its position in the file.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct SpecError {
    /// Boxed: errors travel through every `Result` of validation, which should stay small.
    pub kind: Box<SpecErrorKind>,
    /// The key or item the problem is about.
    pub path: KeyPath,
    /// Where in the file; `None` when the position could not be found.
    pub location: Option<Location>,
    /// What the user can do about it.
    pub help: Option<String>,
}

/// The kinds of spec errors; each one's text says what is wrong at [`SpecError::path`].
#[derive(Debug, thiserror::Error)]
pub enum SpecErrorKind {
    /// The file is not valid YAML.
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    /// A key that the spec does not define.
    #[error("unknown key `{key}` in {parent}")]
    UnknownKey { key: String, parent: Parent },
    /// A required key is absent.
    #[error("missing key `{key}` in {parent}")]
    MissingKey { key: String, parent: Parent },
    /// A string that is not one of the allowed words.
    #[error("`{value}` is not a valid value for `{key}`; expected {expected}")]
    UnknownVariant { key: String, value: String, expected: String },
    /// A value of the wrong type or out of range.
    #[error("invalid value for `{key}`: {message}")]
    InvalidValue { key: String, message: String },
    /// An expression (in `sweep.where` or a derived axis) that does not compile.
    #[error("invalid expression in `{key}`: {source}")]
    Expression {
        key: String,
        #[source]
        source: ExprError,
    },
    /// A rule of the spec that spans several keys (zip lengths, role presence, cycles).
    #[error("{0}")]
    Rule(String),
}

/// The mapping a key belongs to, shown as "`cluster`" or "the top level".
#[derive(Debug, Clone)]
pub struct Parent(pub KeyPath);

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_root() {
            f.write_str("the top level")
        } else {
            write!(f, "`{}`", self.0)
        }
    }
}

impl SpecError {
    pub fn new(kind: SpecErrorKind, path: KeyPath) -> Self {
        Self { kind: Box::new(kind), path, location: None, help: None }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub(crate) fn rule(path: KeyPath, message: impl Into<String>) -> Self {
        Self::new(SpecErrorKind::Rule(message.into()), path)
    }

    pub(crate) fn invalid(path: KeyPath, message: impl Into<String>) -> Self {
        let key = path.to_string();
        Self::new(SpecErrorKind::InvalidValue { key, message: message.into() }, path)
    }
}
