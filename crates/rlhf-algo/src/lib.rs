//! Learning algorithms and their evaluation.
//!
//! - [`Policy`]: anything that maps an observation to an action; [`RandomPolicy`]
//!   samples the action space with its own seeded generator.
//! - [`evaluate`]: plays episodes with a policy and summarises their returns
//!   ([`EvalReport`]).
//! - [`replay::ReplayBuffer`]: a seeded ring buffer of transitions;
//!   [`replay::HerBuffer`]: whole goal-conditioned episodes, relabeled in
//!   hindsight when sampled (Andrychowicz et al. 2017).
//! - [`tabular::QTable`]: tabular Q-learning and SARSA, with
//!   [`tabular::BoxDiscretizer`] for continuous observations.
//! - [`dqn::Dqn`]: deep Q-learning with target network, double Q and dueling
//!   options, configured by [`dqn::DqnConfig`] (Stable-Baselines3's names);
//!   on goal environments it replays through a `HerBuffer` ([`dqn::Dqn::for_goal_env`]).
//! - [`callbacks`]: what runs during training, as Stable-Baselines3's
//!   callbacks: periodic evaluation with best-model saving, checkpoints,
//!   stopping on a threshold, metrics rows, a progress bar.
//! - [`stats`]: learning results over seeds: interquartile means, bootstrap
//!   confidence intervals, probability of improvement, performance profiles.
//!
//! ```
//! use rlhf_algo::{evaluate, RandomPolicy};
//! use rlhf_env::{CartPole, Env};
//!
//! let mut env = CartPole::v1();
//! let mut policy = RandomPolicy::new(*env.action_space(), 0);
//! let report = evaluate(&mut env, &mut policy, 10, 0)?;
//! // A random policy keeps the pole up for about 22 steps on average.
//! assert!(report.mean_return > 5.0 && report.mean_return < 60.0);
//! # Ok::<(), rlhf_algo::AlgoError>(())
//! ```
//!
//! Architecture invariant: algorithms see environments only through the
//! `rlhf_env::Env` trait and networks only through `rlhf-model`.

pub mod callbacks;
pub mod dqn;
mod error;
mod evaluation;
mod policy;
pub mod replay;
pub mod schedule;
pub mod stats;
pub mod tabular;

pub use error::AlgoError;
pub use evaluation::{EvalReport, evaluate};
pub use policy::{GreedyPolicy, Policy, RandomPolicy};
