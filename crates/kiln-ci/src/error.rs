//! The compiler's single error type and the helpers that build GitLab-style messages.
//!
//! GitLab reports two families of messages and we keep both shapes so users can search for them:
//! entry validation ("jobs:rspec config contains unknown keys: foo", produced by its config entry
//! validators, which downcase the whole sentence) and logical validation ("jobs:rspec job:
//! undefined need: build", produced after the entries are valid, kept verbatim).

/// A compile failure: where (GitLab key path) and what (the full user-facing sentence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    /// YAML key path of the problem, GitLab style, e.g. "jobs:rspec:script" or "root"; "" for YAML syntax errors.
    pub path: String,
    /// The full user-facing message, GitLab style.
    pub message: String,
}

impl CompileError {
    /// An error whose message is used verbatim.
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        CompileError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An entry-validation error: "<location> <text>", lowercased like GitLab's
    /// `Gitlab::Config::Entry::Validator#messages` does. The path keeps its original case.
    pub(crate) fn entry(location: &str, text: &str) -> Self {
        CompileError {
            path: location.to_string(),
            message: format!("{location} {text}").to_lowercase(),
        }
    }
}

/// Result alias used throughout the crate.
pub(crate) type Result<T> = std::result::Result<T, CompileError>;
