//! What DQN replays from: plain transitions, or goal-conditioned episodes
//! relabeled in hindsight. The update sees only the sampled [`ReplayBatch`].

use rand::Rng;
use rlhf_env::GoalObs;

use crate::error::AlgoError;
use crate::replay::{HerBuffer, ReplayBatch, ReplayBuffer};

/// Observations DQN can learn from, written as one flat row of floats: the
/// values themselves for a flat observation, `[observation, achieved_goal,
/// desired_goal]` for a goal observation. The network reads the
/// observation's network input, which is defined here and only here.
pub trait FlatObs {
    /// Appends the row (what replay stores) to `out`.
    fn write_flat(&self, out: &mut Vec<f32>);

    /// Appends what the Q-network reads to `out`: the row itself, unless the
    /// observation says otherwise.
    fn write_network_input(&self, out: &mut Vec<f32>) {
        self.write_flat(out);
    }
}

impl<const N: usize> FlatObs for [f32; N] {
    fn write_flat(&self, out: &mut Vec<f32>) {
        out.extend_from_slice(self);
    }
}

impl FlatObs for Vec<f32> {
    fn write_flat(&self, out: &mut Vec<f32>) {
        out.extend_from_slice(self);
    }
}

impl FlatObs for GoalObs {
    fn write_flat(&self, out: &mut Vec<f32>) {
        out.extend_from_slice(&self.observation);
        out.extend_from_slice(&self.achieved_goal);
        out.extend_from_slice(&self.desired_goal);
    }

    /// `[observation, desired_goal]`: the policy is conditioned on the goal
    /// (hindsight replay writes its relabeled goal in the same place).
    fn write_network_input(&self, out: &mut Vec<f32>) {
        out.extend_from_slice(&self.observation);
        out.extend_from_slice(&self.desired_goal);
    }
}

/// The agent's replay, by kind of environment.
#[derive(Debug)]
pub(super) enum ReplayStore {
    /// Flat observations; the row is the network input.
    Transitions(ReplayBuffer),
    /// Goal observations; the network reads `[observation, desired_goal]`.
    Hindsight(HerBuffer),
}

impl ReplayStore {
    /// Values of a flat row.
    pub(super) fn row_dim(&self) -> usize {
        match self {
            ReplayStore::Transitions(buffer) => buffer.obs_dim(),
            ReplayStore::Hindsight(buffer) => buffer.row_dim(),
        }
    }

    #[allow(clippy::too_many_arguments)] // one transition's fields
    pub(super) fn push(
        &mut self,
        row: &[f32],
        action: usize,
        reward: f32,
        next_row: &[f32],
        terminated: bool,
        episode_end: bool,
        steps: u8,
    ) -> Result<(), AlgoError> {
        match self {
            ReplayStore::Transitions(buffer) => buffer.push_n_step(row, action, reward, next_row, terminated, steps),
            ReplayStore::Hindsight(buffer) => buffer.push(row, action, reward, next_row, terminated, episode_end),
        }
    }

    pub(super) fn sample_into<R: Rng + ?Sized>(
        &self,
        batch_size: usize,
        rng: &mut R,
        batch: &mut ReplayBatch,
    ) -> Result<(), AlgoError> {
        match self {
            ReplayStore::Transitions(buffer) => buffer.sample_into(batch_size, rng, batch),
            ReplayStore::Hindsight(buffer) => buffer.sample_into(batch_size, rng, batch),
        }
    }

    /// Whether a batch can be sampled yet.
    pub(super) fn is_empty(&self) -> bool {
        match self {
            ReplayStore::Transitions(buffer) => buffer.is_empty(),
            ReplayStore::Hindsight(buffer) => buffer.is_empty(),
        }
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        match self {
            ReplayStore::Transitions(buffer) => buffer.to_bytes(),
            ReplayStore::Hindsight(buffer) => buffer.to_bytes(),
        }
    }
}

/// Writes `obs` into `row` as one flat row, or errors when it does not have
/// the `dim` values the agent was built for.
pub(super) fn write_row(obs: &impl FlatObs, row: &mut Vec<f32>, dim: usize) -> Result<(), AlgoError> {
    row.clear();
    obs.write_flat(row);
    if row.len() != dim {
        return Err(AlgoError::ShapeMismatch {
            what: "the observation (as a flat row)".into(),
            expected: format!("{dim} values"),
            found: format!("{} values", row.len()),
        });
    }
    Ok(())
}
