//! The one error type of this crate.

use rlhf_env::EnvError;
use rlhf_model::ModelError;

/// Why an algorithm could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlgoError {
    /// The environment refused a call.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The model layer failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A configuration value out of its allowed range.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}
