//! The one error type of this crate.

use rlhf_env::EnvError;

/// Why an algorithm could not go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AlgoError {
    /// The environment refused a call.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A configuration value out of its allowed range.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}
