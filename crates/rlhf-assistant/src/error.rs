//! The one error type of this crate.

use std::path::PathBuf;

use rlhf_algo::AlgoError;
use rlhf_env::EnvError;
use rlhf_model::ModelError;
use rlhf_model::checkpoint::CheckpointError;

use crate::corpus::DatasetError;

/// Why the assistant could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssistantError {
    /// An intent corpus could not be read (the error names file and line).
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The feedback store refused (the error names the store).
    #[error(transparent)]
    Store(#[from] crate::serve::store::StoreError),
    /// A learning algorithm failed.
    #[error(transparent)]
    Algo(#[from] AlgoError),
    /// An environment refused a call.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The model layer failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The sentence encoder failed (the error names the model file).
    #[error(transparent)]
    Encoder(#[from] crate::encoder::EncoderError),
    /// A checkpoint could not be written or trusted.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
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
    /// A configuration value out of its allowed range.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// An intent name that does not fit the model or the data.
    #[error("intent `{name}`: {reason}")]
    Intent {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request that does not fit the assistant's state (an index out of
    /// range, an answer of another model).
    #[error("{what}: {reason}")]
    Invalid {
        /// What was asked.
        what: String,
        /// Why it cannot be done.
        reason: String,
    },
}
