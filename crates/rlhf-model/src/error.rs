//! The one error type of this crate.

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Tensor data could not be read back to the host.
    #[error("reading {what} from the backend failed: {message}")]
    TensorRead {
        /// Which tensor.
        what: String,
        /// The backend's message.
        message: String,
    },
    /// An input whose size does not match the network.
    #[error("{what}: expected {expected} values, found {found}")]
    ShapeMismatch {
        /// Which input.
        what: &'static str,
        /// The size the network needs.
        expected: usize,
        /// The size given.
        found: usize,
    },
    /// A configuration value out of its allowed range.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}
