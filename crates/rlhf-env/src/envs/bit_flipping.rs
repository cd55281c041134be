//! Bit flipping (Andrychowicz et al. 2017, "Hindsight Experience Replay", §3.1).
//!
//! The state and the goal are `n` bits, drawn uniformly with state ≠ goal;
//! action `i` flips bit `i`. The reward is −1 at every step until the state
//! equals the goal, and 0 on the step that reaches it, which terminates the
//! episode; after `n` steps (by default) the episode is truncated. A random
//! policy almost never sees a reward of 0 once `n` passes a dozen or so, which
//! is why plain DQN fails there and hindsight relabeling does not.

use rand::Rng as _;

use crate::env::{Env, Snapshot, Step};
use crate::error::EnvError;
use crate::goal::{GoalEnv, GoalEpisode, GoalInfo, GoalObs, GoalSpace, SparseGoalReward};
use crate::rng::EnvRng;
use crate::spaces::{Discrete, MultiBinary};

/// The bit-flipping task with `n_bits` bits.
#[derive(Debug, Clone)]
pub struct BitFlipping {
    id: String,
    episode: GoalEpisode,
    state: Vec<f32>,
    goal: Vec<f32>,
    observation_space: GoalSpace<MultiBinary>,
    action_space: Discrete,
}

/// The complete state of a [`BitFlipping`] (see [`Snapshot`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BitFlippingState {
    episode: GoalEpisode,
    state: Vec<f32>,
    goal: Vec<f32>,
}

impl BitFlipping {
    /// `n_bits` bits (at least 1), episodes truncated after `n_bits` steps as in the paper.
    pub fn new(n_bits: usize) -> Result<Self, EnvError> {
        let space = MultiBinary::new(n_bits)
            .map_err(|_| EnvError::InvalidConfig { field: "n_bits", reason: "must be at least 1".into() })?;
        Ok(Self {
            id: format!("bitflip:{n_bits}"),
            episode: GoalEpisode::new(n_bits),
            state: vec![0.0; n_bits],
            goal: vec![0.0; n_bits],
            observation_space: GoalSpace { observation: space, goal: space },
            action_space: Discrete::new(n_bits)?,
        })
    }

    /// The same task with episodes truncated after `max_steps` steps (at least 1).
    pub fn with_max_steps(mut self, max_steps: usize) -> Result<Self, EnvError> {
        if max_steps == 0 {
            return Err(EnvError::InvalidConfig { field: "max_steps", reason: "must be at least 1".into() });
        }
        self.episode.max_steps = max_steps;
        Ok(self)
    }

    /// The number of bits.
    pub fn n_bits(&self) -> usize {
        self.state.len()
    }

    /// Steps after which an episode is truncated.
    pub fn max_steps(&self) -> usize {
        self.episode.max_steps
    }

    fn observation(&self) -> GoalObs {
        GoalObs { observation: self.state.clone(), achieved_goal: self.state.clone(), desired_goal: self.goal.clone() }
    }

    fn draw_bits(rng: &mut EnvRng, bits: &mut [f32]) {
        for chunk in bits.chunks_mut(64) {
            let word = rng.next_u64();
            for (i, bit) in chunk.iter_mut().enumerate() {
                *bit = ((word >> i) & 1) as f32;
            }
        }
    }
}

impl Env for BitFlipping {
    type Obs = GoalObs;
    type Action = usize;
    type Info = GoalInfo;
    type ObsSpace = GoalSpace<MultiBinary>;
    type ActionSpace = Discrete;

    fn id(&self) -> &str {
        &self.id
    }

    fn observation_space(&self) -> &Self::ObsSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &Discrete {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> (GoalObs, GoalInfo) {
        self.episode.start(seed);
        Self::draw_bits(&mut self.episode.rng, &mut self.state);
        // The paper draws the goal different from the start; equal draws have
        // probability 2^-n, so the loop ends at once in practice.
        loop {
            Self::draw_bits(&mut self.episode.rng, &mut self.goal);
            if self.goal != self.state {
                break;
            }
        }
        (self.observation(), GoalInfo::default())
    }

    fn step(&mut self, action: usize) -> Result<Step<GoalObs, GoalInfo>, EnvError> {
        self.episode.check_step(&self.id, action, &self.action_space)?;
        self.state[action] = 1.0 - self.state[action];
        Ok(self.episode.finish(self.observation()))
    }
}

impl GoalEnv for BitFlipping {
    type Reward = SparseGoalReward;

    fn goal_reward(&self) -> &SparseGoalReward {
        &SparseGoalReward
    }

    fn observation_dim(&self) -> usize {
        self.n_bits()
    }

    fn goal_dim(&self) -> usize {
        self.n_bits()
    }
}

impl Snapshot for BitFlipping {
    type State = BitFlippingState;

    fn snapshot(&self) -> BitFlippingState {
        BitFlippingState { episode: self.episode.clone(), state: self.state.clone(), goal: self.goal.clone() }
    }

    fn restore(&mut self, state: BitFlippingState) {
        self.episode = state.episode;
        self.state = state.state;
        self.goal = state.goal;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check_env, check_goal_env};

    #[test]
    fn flipping_the_differing_bits_reaches_the_goal_with_reward_zero() {
        let mut env = BitFlipping::new(8).unwrap();
        let (obs, _) = env.reset(Some(3));
        assert_ne!(obs.observation, obs.desired_goal);
        assert_eq!(obs.observation, obs.achieved_goal);
        let differing: Vec<usize> = (0..8).filter(|&i| obs.observation[i] != obs.desired_goal[i]).collect();
        for (k, &bit) in differing.iter().enumerate() {
            let step = env.step(bit).unwrap();
            let last = k + 1 == differing.len();
            assert_eq!(step.reward, if last { 0.0 } else { -1.0 });
            assert_eq!(step.terminated, last);
            assert_eq!(step.info.is_success, last);
            assert_eq!(step.obs.observation[bit], obs.desired_goal[bit]);
        }
        assert!(matches!(env.step(0), Err(EnvError::EpisodeEnded { .. })));
    }

    #[test]
    fn episodes_are_truncated_after_n_steps() {
        let mut env = BitFlipping::new(5).unwrap();
        let (obs, _) = env.reset(Some(1));
        // Flipping a bit that already matches the goal, back and forth, never
        // reaches it: the bits that differ at the start stay different.
        let bit = (0..5).find(|&i| obs.observation[i] == obs.desired_goal[i]).unwrap_or(0);
        let steps: Vec<_> = (0..5).map(|_| env.step(bit).unwrap()).collect();
        assert!(steps[..4].iter().all(|s| !s.done()));
        assert!(steps[4].truncated && !steps[4].terminated);
        assert!(steps.iter().all(|s| s.reward == -1.0));
    }

    #[test]
    fn sixty_four_bits_and_more_work_and_the_start_is_never_the_goal() {
        for n in [1, 2, 63, 64, 65, 200] {
            let mut env = BitFlipping::new(n).unwrap();
            for seed in 0..20 {
                let (obs, _) = env.reset(Some(seed));
                assert_eq!(obs.observation.len(), n);
                assert_ne!(obs.observation, obs.desired_goal, "n {n} seed {seed}");
            }
        }
        // Both halves of a 128-bit state are random (no word reused).
        let mut env = BitFlipping::new(128).unwrap();
        let (obs, _) = env.reset(Some(9));
        assert_ne!(obs.observation[..64], obs.observation[64..]);
    }

    #[test]
    fn keeps_the_env_and_goal_env_contracts() {
        let mut env = BitFlipping::new(4).unwrap();
        check_env(&mut env, 0, 20, 100).unwrap();
        let report = check_goal_env(&mut env, 1, 20).unwrap();
        assert!(report.successes > 0, "4 bits in 4 random steps succeed sometimes");
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert!(matches!(BitFlipping::new(0), Err(EnvError::InvalidConfig { field: "n_bits", .. })));
        assert!(BitFlipping::new(3).unwrap().with_max_steps(0).is_err());
        let mut env = BitFlipping::new(3).unwrap();
        assert!(matches!(env.step(0), Err(EnvError::NotReset { .. })));
        env.reset(None);
        assert!(matches!(env.step(3), Err(EnvError::InvalidAction { .. })));
    }

    #[test]
    fn snapshot_restores_the_episode_and_the_stream() {
        let mut env = BitFlipping::new(16).unwrap();
        env.reset(Some(5));
        env.step(2).unwrap();
        let saved = env.snapshot();
        let after: Vec<_> = (0..3).map(|i| env.step(i).unwrap().obs).collect();
        let next_reset = env.reset(None).0;
        let mut other = BitFlipping::new(16).unwrap();
        other.restore(saved);
        let replay: Vec<_> = (0..3).map(|i| other.step(i).unwrap().obs).collect();
        assert_eq!(after, replay);
        assert_eq!(next_reset, other.reset(None).0);
    }
}
