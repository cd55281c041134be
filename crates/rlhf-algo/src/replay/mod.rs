//! Experience replay: storage of transitions and uniform sampling, and the
//! episode-aware buffer of hindsight experience replay.

mod buffer;
mod hindsight;

pub use buffer::{ReplayBatch, ReplayBuffer};
pub use hindsight::{GoalStrategy, HerBuffer, HerConfig};
