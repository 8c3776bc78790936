//! Rules errors: always say which file, which rule and which field, so an operator can fix a
//! rules directory from the message alone (the binary prints it and exits 2).

use std::fmt;

/// A rules file could not be read or is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    /// Path of the file (or `builtin:<event-id>` for the embedded distrust history).
    pub file: String,
    /// Table kind and identity, e.g. `[[removal]] "corp-root-g1"` or `[[segment]] #2`.
    pub rule: Option<String>,
    /// Key inside the rule, e.g. `removed` or `cas[1].sha256`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl RulesError {
    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        RulesError {
            file: file.to_string(),
            rule: None,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(r) = &self.rule {
            write!(f, ": {r}")?;
        }
        if let Some(k) = &self.field {
            write!(f, ": field `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RulesError {}
