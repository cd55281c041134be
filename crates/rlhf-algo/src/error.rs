//! The one error type of this crate.

use std::path::PathBuf;

use rlhf_env::EnvError;
use rlhf_model::ModelError;
use rlhf_model::checkpoint::CheckpointError;

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
    /// A checkpoint could not be written or trusted.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A saved training state that cannot be used.
    #[error("{path}: {reason}")]
    BadState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A line of a log that cannot be used.
    #[error("{path}:{line}: {reason}")]
    LogLine {
        /// The log file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Data of the wrong size for what it is given to (an observation for
    /// another environment, a pretrained network of another shape).
    #[error("{what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// What has the wrong shape.
        what: String,
        /// The shape wanted.
        expected: String,
        /// The shape given.
        found: String,
    },
    /// Sampling from a replay buffer that holds nothing to sample yet.
    #[error("cannot sample: {reason}")]
    EmptyReplay {
        /// Why there is nothing.
        reason: &'static str,
    },
    /// A combination of settings and environments that cannot work together.
    #[error("{what} is not supported: {reason}")]
    Unsupported {
        /// The combination.
        what: String,
        /// Why not.
        reason: String,
    },
    /// A value could not be turned into bytes or text.
    #[error("serialising {what}: {reason}")]
    Serialize {
        /// The value.
        what: String,
        /// The serialiser's reason.
        reason: String,
    },
    /// A training callback failed with an error of its own (a probe of a
    /// higher layer, say), kept as the source.
    #[error("callback failed: {0}")]
    Callback(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A configuration value out of its allowed range.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}
