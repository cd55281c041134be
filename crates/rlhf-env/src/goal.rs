//! Goal-conditioned environments, the interface hindsight replay needs.
//!
//! A goal environment (Gymnasium-Robotics' `GoalEnv`) observes three parts:
//! the `observation`, the goal the agent has `achieved` (a function of the
//! state) and the goal it was asked for, the `desired_goal`. The reward is a
//! pure function of the achieved and desired goals, so a learner can ask
//! "what would the reward have been, had the goal been g?" for any stored
//! transition: that is what hindsight experience replay relabels with.
//!
//! The contract, checked by [`crate::check_goal_env`]: every step's reward is
//! `compute_reward(next.achieved_goal, desired_goal)`, its `terminated` flag
//! is `compute_terminated` of the same pair, the desired goal does not change
//! within an episode, and `info.is_success` says whether the goal was reached.

use std::fmt;

use rand::Rng;

use crate::env::{Env, EpisodePhase, Step};
use crate::error::EnvError;
use crate::rng::{EnvRng, seeded_rng};
use crate::spaces::{Discrete, Space};

/// What a goal environment observes.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct GoalObs {
    /// The state as the agent sees it.
    pub observation: Vec<f32>,
    /// The goal the current state achieves.
    pub achieved_goal: Vec<f32>,
    /// The goal of the episode.
    pub desired_goal: Vec<f32>,
}

/// The diagnostics of a goal environment's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GoalInfo {
    /// The achieved goal equals the desired one.
    pub is_success: bool,
}

/// Diagnostics that may say whether an episode succeeded, so evaluation can
/// report a success rate for tasks that have one.
pub trait EpisodeOutcome {
    /// `Some(true)` when the step reached the task's goal, `None` when the
    /// task has no notion of success.
    fn is_success(&self) -> Option<bool> {
        None
    }
}

impl EpisodeOutcome for () {}

impl EpisodeOutcome for GoalInfo {
    fn is_success(&self) -> Option<bool> {
        Some(self.is_success)
    }
}

/// The reward of a goal-conditioned task: a pure function of the achieved
/// and the desired goal, shareable with a replay buffer that relabels goals.
pub trait GoalReward: fmt::Debug + Send + Sync {
    /// The reward of a transition whose next state achieves `achieved` when `desired` was asked for.
    fn compute_reward(&self, achieved: &[f32], desired: &[f32]) -> f64;

    /// Whether that transition ends the episode (the goal is reached).
    fn compute_terminated(&self, achieved: &[f32], desired: &[f32]) -> bool;

    /// [`GoalReward::compute_reward`] for many pairs at once: `achieved` and
    /// `desired` hold rows of `goal_dim` values, `rewards` one value per row.
    fn compute_rewards(&self, achieved: &[f32], desired: &[f32], goal_dim: usize, rewards: &mut [f32]) {
        let rows = achieved.chunks_exact(goal_dim.max(1)).zip(desired.chunks_exact(goal_dim.max(1)));
        for (reward, (a, d)) in rewards.iter_mut().zip(rows) {
            *reward = self.compute_reward(a, d) as f32;
        }
    }
}

/// The sparse reward of the hindsight paper: 0 when the achieved goal equals
/// the desired one exactly, −1 otherwise; reaching the goal terminates.
///
/// Exact float equality is right here because goals are discrete (bits, grid
/// cells) and computed the same way on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SparseGoalReward;

impl GoalReward for SparseGoalReward {
    fn compute_reward(&self, achieved: &[f32], desired: &[f32]) -> f64 {
        if achieved == desired { 0.0 } else { -1.0 }
    }

    fn compute_terminated(&self, achieved: &[f32], desired: &[f32]) -> bool {
        achieved == desired
    }
}

/// A goal-conditioned environment: observations are [`GoalObs`] and the reward
/// is [`GoalEnv::goal_reward`]'s function of the goals.
pub trait GoalEnv: Env<Obs = GoalObs, Info = GoalInfo> {
    /// The reward function's type.
    type Reward: GoalReward + Clone + 'static;

    /// The reward function, for relabeling.
    fn goal_reward(&self) -> &Self::Reward;

    /// Values in `observation`.
    fn observation_dim(&self) -> usize;

    /// Values in `achieved_goal` and in `desired_goal`.
    fn goal_dim(&self) -> usize;
}

/// The observation space of a goal environment: one space per part.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalSpace<S> {
    /// Space of `observation`.
    pub observation: S,
    /// Space of `achieved_goal` and `desired_goal`.
    pub goal: S,
}

impl<S: Space<Vec<f32>>> Space<GoalObs> for GoalSpace<S> {
    fn contains(&self, value: &GoalObs) -> bool {
        self.observation.contains(&value.observation)
            && self.goal.contains(&value.achieved_goal)
            && self.goal.contains(&value.desired_goal)
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> GoalObs {
        GoalObs {
            observation: self.observation.sample(rng),
            achieved_goal: self.goal.sample(rng),
            desired_goal: self.goal.sample(rng),
        }
    }
}

impl<S: fmt::Display> fmt::Display for GoalSpace<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dict(observation: {}, achieved_goal: {g}, desired_goal: {g})", self.observation, g = self.goal)
    }
}

/// The episode bookkeeping the goal tasks share: their generator, the step
/// count and limit, and whether a step is allowed now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct GoalEpisode {
    pub(crate) rng: EnvRng,
    pub(crate) max_steps: usize,
    steps: usize,
    phase: EpisodePhase,
}

impl GoalEpisode {
    pub(crate) fn new(max_steps: usize) -> Self {
        Self { rng: seeded_rng(0), max_steps, steps: 0, phase: EpisodePhase::NotStarted }
    }

    /// Starts an episode, re-seeding first when `seed` is given.
    pub(crate) fn start(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = seeded_rng(seed);
        }
        self.steps = 0;
        self.phase = EpisodePhase::Running;
    }

    /// Refuses an action outside `space` or a step outside an episode.
    pub(crate) fn check_step(&self, env: &str, action: usize, space: &Discrete) -> Result<(), EnvError> {
        if !space.contains(&action) {
            return Err(EnvError::InvalidAction {
                env: env.to_owned(),
                action: format!("{action:?}"),
                space: space.to_string(),
            });
        }
        self.phase.check_step(env)
    }

    /// Counts a step that led to `obs` and builds its result: the sparse
    /// reward and termination of `obs`'s goals, and truncation at the limit
    /// (Gymnasium's `TimeLimit` semantics: the limit truncates even a step
    /// that also terminates).
    pub(crate) fn finish(&mut self, obs: GoalObs) -> Step<GoalObs, GoalInfo> {
        self.steps += 1;
        let reward = SparseGoalReward.compute_reward(&obs.achieved_goal, &obs.desired_goal);
        let terminated = SparseGoalReward.compute_terminated(&obs.achieved_goal, &obs.desired_goal);
        let truncated = self.steps >= self.max_steps;
        if terminated || truncated {
            self.phase = EpisodePhase::Ended;
        }
        Step { obs, reward, terminated, truncated, info: GoalInfo { is_success: terminated } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng;
    use crate::spaces::MultiBinary;

    #[test]
    fn sparse_reward_is_zero_exactly_at_the_goal() {
        let reward = SparseGoalReward;
        assert_eq!(reward.compute_reward(&[1.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(reward.compute_reward(&[1.0, 0.0], &[1.0, 1.0]), -1.0);
        assert!(reward.compute_terminated(&[0.5], &[0.5]));
        assert!(!reward.compute_terminated(&[0.5], &[0.25]));
    }

    #[test]
    fn batched_rewards_equal_the_single_ones() {
        let achieved = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        let desired = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let mut rewards = [9.0; 3];
        SparseGoalReward.compute_rewards(&achieved, &desired, 2, &mut rewards);
        assert_eq!(rewards, [0.0, -1.0, -1.0]);
    }

    #[test]
    fn goal_space_checks_every_part() {
        let space = GoalSpace { observation: MultiBinary::new(3).unwrap(), goal: MultiBinary::new(3).unwrap() };
        let mut rng = seeded_rng(0);
        let sample = space.sample(&mut rng);
        assert!(space.contains(&sample));
        let mut bad = sample.clone();
        bad.desired_goal[1] = 0.5;
        assert!(!space.contains(&bad));
        bad = sample;
        bad.achieved_goal.pop();
        assert!(!space.contains(&bad));
        assert!(space.to_string().starts_with("Dict(observation: MultiBinary(3)"));
    }
}
