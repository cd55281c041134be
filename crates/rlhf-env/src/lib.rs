//! Reinforcement-learning environments with Gymnasium 1.x semantics.
//!
//! The pieces, in the order a learner meets them:
//!
//! - [`Env`]: `reset(seed) -> (obs, info)` and `step(action) -> Step { obs, reward,
//!   terminated, truncated, info }`, with typed observation and action spaces.
//! - [`spaces`]: [`BoxSpace`], [`Discrete`] and [`MultiBinary`], each able to
//!   `contains` and `sample` (with an RNG you pass in).
//! - [`TimeLimit`]: cuts episodes after a number of steps (`truncated`, not `terminated`).
//! - [`VecEnv`]: N copies stepped together, sequentially or across threads, with
//!   same-step (the true final observation of each finished episode kept) or
//!   next-step auto-reset (reset slots marked), and a snapshot of them all.
//! - [`atomic`]: writing a file so a reader sees the old one or the new one.
//! - [`check_env`]: validates an environment the way Stable-Baselines3's `check_env` does.
//! - [`CartPole`]: CartPole-v1, bit for bit the dynamics of Gymnasium's `cartpole.py`.
//! - [`goal`]: goal-conditioned environments for hindsight replay ([`GoalEnv`],
//!   [`check_goal_env`]): [`BitFlipping`] and the [`FourRooms`] grid.
//!
//! ```
//! use rlhf_env::{CartPole, Env};
//!
//! let mut env = CartPole::v1(); // CartPole wrapped in a 500-step TimeLimit
//! let (mut obs, _info) = env.reset(Some(42));
//! let mut episode_return = 0.0;
//! loop {
//!     // Push the cart towards the side the pole is falling to.
//!     let action = usize::from(obs[2] + 0.5 * obs[3] > 0.0);
//!     let step = env.step(action)?;
//!     episode_return += step.reward;
//!     obs = step.obs;
//!     if step.terminated || step.truncated {
//!         break;
//!     }
//! }
//! assert!(episode_return >= 1.0);
//! # Ok::<(), rlhf_env::EnvError>(())
//! ```
//!
//! Architecture invariant: this crate knows nothing about neural networks or
//! learning algorithms; it never depends on burn.

pub mod atomic;
mod checker;
mod env;
pub mod envs;
mod error;
pub mod goal;
mod registry;
#[cfg(feature = "render")]
pub mod render;
pub mod rng;
pub mod spaces;
mod vector;
pub mod wrappers;

pub use checker::{CheckError, CheckReport, GoalCheckReport, check_env, check_goal_env};
pub use env::{Env, EpisodePhase, Snapshot, Step};
pub use envs::bit_flipping::BitFlipping;
pub use envs::cartpole::{CartPole, CartPoleConfig, CartPoleState, Integrator};
pub use envs::four_rooms::FourRooms;
pub use error::EnvError;
pub use goal::{EpisodeOutcome, GoalEnv, GoalInfo, GoalObs, GoalReward, GoalSpace, SparseGoalReward};
pub use registry::EnvId;
pub use spaces::{BoxSpace, Discrete, MultiBinary, Space};
pub use vector::{AutoresetMode, EnvSubStep, SubStep, VecEnv, VecEnvState};
pub use wrappers::TimeLimit;
