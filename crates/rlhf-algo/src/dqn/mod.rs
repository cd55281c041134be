//! Deep Q-networks (Mnih et al. 2015) with target network, double Q-learning
//! (van Hasselt et al. 2016) and an optional dueling head; on goal
//! environments with hindsight experience replay (Andrychowicz et al. 2017).

mod agent;
mod collect;
mod config;
mod host;
mod persistence;
mod store;
mod td;

pub use crate::callbacks::TrainEvent;
pub use agent::Dqn;
pub use config::{BIT_FLIPPING_LARGE_N, DqnConfig, LossKind, UpdatePath};
pub use store::FlatObs;
pub use td::td_targets;
