//! The one error type of this crate.

/// Why an environment refused a call. Every variant names the environment or
/// the field involved, so the message alone says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// `step` was called before the first `reset`.
    #[error("{env}: step() called before reset(); call reset() first")]
    NotReset {
        /// Id of the environment.
        env: String,
    },
    /// `step` was called after the episode ended (terminated or truncated)
    /// without a `reset` in between.
    #[error("{env}: step() called after the episode ended; call reset() first")]
    EpisodeEnded {
        /// Id of the environment.
        env: String,
    },
    /// The action is not an element of the action space.
    #[error("{env}: action {action} is not in the action space {space}")]
    InvalidAction {
        /// Id of the environment.
        env: String,
        /// The rejected action, formatted with `Debug`.
        action: String,
        /// The action space, formatted with `Display`.
        space: String,
    },
    /// A vectorised step got a number of actions other than the number of environments.
    #[error("vectorised step got {found} actions for {expected} environments")]
    ActionCount {
        /// Number of sub-environments.
        expected: usize,
        /// Number of actions passed.
        found: usize,
    },
    /// An environment id that no environment answers to.
    #[error("unknown environment `{id}`; known environments: {known}")]
    UnknownEnv {
        /// The id as given.
        id: String,
        /// The ids that exist, comma-separated.
        known: String,
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
