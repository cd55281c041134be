//! The environment trait and the result of one step.

use std::fmt;

use crate::error::EnvError;
use crate::spaces::Space;

/// The outcome of one [`Env::step`].
///
/// `terminated` and `truncated` are kept apart as in Gymnasium 1.x, because a
/// learner bootstraps differently on each: a terminated episode reached a true
/// end of the MDP, so the value of the next state is zero and the TD target is
/// `r`; a truncated episode was only cut by a time limit, the next state still
/// has a future, and the target stays `r + γ max_a Q(s', a)`. Treating a
/// truncation as a termination teaches the agent that time-outs are deaths.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<O, I = ()> {
    /// Observation after the action.
    pub obs: O,
    /// Reward for the transition.
    pub reward: f64,
    /// The MDP reached a terminal state (success or failure).
    pub terminated: bool,
    /// The episode was cut short (e.g. by [`crate::TimeLimit`]) in a non-terminal state.
    pub truncated: bool,
    /// Environment-specific diagnostics.
    pub info: I,
}

impl<O, I> Step<O, I> {
    /// Whether the episode is over for either reason; the next call must be `reset`.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// A reinforcement-learning environment with Gymnasium 1.x semantics.
///
/// Seeding: `reset(Some(seed))` re-seeds the environment's own generator, so
/// the episode that follows (and every later `reset(None)` episode) is the same
/// on every machine; `reset(None)` continues the current stream. A freshly
/// built environment draws from the stream of seed 0 until it is seeded.
///
/// Calling `step` before the first `reset`, or after an episode ended without
/// a `reset`, is an [`EnvError`], never a panic.
pub trait Env {
    /// What the agent observes.
    type Obs: Clone + fmt::Debug;
    /// What the agent does.
    type Action: Clone + fmt::Debug;
    /// Diagnostics returned with each reset and step (`()` when there are none).
    type Info: Clone + fmt::Debug + Default;
    /// The set every observation belongs to.
    type ObsSpace: Space<Self::Obs>;
    /// The set of valid actions.
    type ActionSpace: Space<Self::Action>;

    /// A stable identifier such as `"CartPole-v1"`.
    fn id(&self) -> &str;

    /// The observation space.
    fn observation_space(&self) -> &Self::ObsSpace;

    /// The action space.
    fn action_space(&self) -> &Self::ActionSpace;

    /// Starts a new episode, re-seeding first when `seed` is given.
    fn reset(&mut self, seed: Option<u64>) -> (Self::Obs, Self::Info);

    /// Advances the episode by one action.
    fn step(&mut self, action: Self::Action) -> Result<Step<Self::Obs, Self::Info>, EnvError>;
}

/// An environment whose complete state (dynamics, generator, episode
/// bookkeeping) can be saved and restored, so training can stop and resume
/// exactly where it was.
pub trait Snapshot {
    /// Everything needed to continue as if never interrupted.
    type State: serde::Serialize + serde::de::DeserializeOwned + Clone + fmt::Debug;

    /// The current state.
    fn snapshot(&self) -> Self::State;

    /// Continues from `state`, as taken by [`Snapshot::snapshot`] on an
    /// environment built with the same configuration.
    fn restore(&mut self, state: Self::State);
}

/// Where an episode stands; environments use it to refuse a step without reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum EpisodePhase {
    /// Never reset.
    #[default]
    NotStarted,
    /// Inside an episode.
    Running,
    /// The last step terminated or truncated the episode.
    Ended,
}

impl EpisodePhase {
    /// `Ok` when a step may be taken, else the error naming `env`.
    pub fn check_step(self, env: &str) -> Result<(), EnvError> {
        match self {
            EpisodePhase::Running => Ok(()),
            EpisodePhase::NotStarted => Err(EnvError::NotReset { env: env.to_owned() }),
            EpisodePhase::Ended => Err(EnvError::EpisodeEnded { env: env.to_owned() }),
        }
    }
}
