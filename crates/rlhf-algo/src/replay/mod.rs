//! Experience replay: storage of transitions and uniform sampling.

mod buffer;

pub use buffer::{ReplayBatch, ReplayBuffer};
