//! Wrappers: environments that change another environment's episodes.

mod time_limit;

pub use time_limit::{TimeLimit, TimeLimitState};
