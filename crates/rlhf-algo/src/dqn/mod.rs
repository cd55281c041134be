//! Deep Q-networks (Mnih et al. 2015) with target network, double Q-learning
//! (van Hasselt et al. 2016) and an optional dueling head.

mod agent;
mod config;
mod persistence;
mod td;

pub use agent::{Dqn, EvalSchedule, TrainEvent};
pub use config::{DqnConfig, LossKind};
pub use td::td_targets;
