//! [`TimeLimit`]: cuts episodes after a number of steps, reporting the cut
//! as `truncated` (not `terminated`), so learners keep bootstrapping there.

use crate::env::{Env, EpisodePhase, Snapshot, Step};
use crate::error::EnvError;

/// Truncates episodes after `max_episode_steps` steps, as Gymnasium's `TimeLimit`.
///
/// The step that reaches the limit returns `truncated = true` (and keeps
/// `terminated` as the inner environment reported it: both can be true).
/// Stepping on after that, without `reset`, is an error.
#[derive(Debug, Clone)]
pub struct TimeLimit<E> {
    env: E,
    max_episode_steps: usize,
    elapsed_steps: usize,
    phase: EpisodePhase,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `env`; `max_episode_steps` of 0 would truncate before any step,
    /// so it is treated as 1.
    pub fn new(env: E, max_episode_steps: usize) -> Self {
        Self { env, max_episode_steps: max_episode_steps.max(1), elapsed_steps: 0, phase: EpisodePhase::NotStarted }
    }

    /// The step limit.
    pub fn max_episode_steps(&self) -> usize {
        self.max_episode_steps
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> usize {
        self.elapsed_steps
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The wrapped environment, mutably (e.g. to set a state for a replay).
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// Unwraps.
    pub fn into_inner(self) -> E {
        self.env
    }
}

/// The complete state of a [`TimeLimit`] and the environment inside it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimeLimitState<S> {
    inner: S,
    elapsed_steps: usize,
    phase: EpisodePhase,
}

impl<E: Env + Snapshot> Snapshot for TimeLimit<E> {
    type State = TimeLimitState<E::State>;

    fn snapshot(&self) -> Self::State {
        TimeLimitState { inner: self.env.snapshot(), elapsed_steps: self.elapsed_steps, phase: self.phase }
    }

    fn restore(&mut self, state: Self::State) {
        self.env.restore(state.inner);
        self.elapsed_steps = state.elapsed_steps;
        self.phase = state.phase;
    }
}

impl<E: Env> Env for TimeLimit<E> {
    type Obs = E::Obs;
    type Action = E::Action;
    type Info = E::Info;
    type ObsSpace = E::ObsSpace;
    type ActionSpace = E::ActionSpace;

    fn id(&self) -> &str {
        self.env.id()
    }

    fn observation_space(&self) -> &E::ObsSpace {
        self.env.observation_space()
    }

    fn action_space(&self) -> &E::ActionSpace {
        self.env.action_space()
    }

    fn reset(&mut self, seed: Option<u64>) -> (E::Obs, E::Info) {
        self.elapsed_steps = 0;
        self.phase = EpisodePhase::Running;
        self.env.reset(seed)
    }

    fn step(&mut self, action: E::Action) -> Result<Step<E::Obs, E::Info>, EnvError> {
        self.phase.check_step(self.env.id())?;
        let mut step = self.env.step(action)?;
        self.elapsed_steps += 1;
        if self.elapsed_steps >= self.max_episode_steps {
            step.truncated = true;
        }
        if step.done() {
            self.phase = EpisodePhase::Ended;
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::cartpole::{CartPole, V1_MAX_EPISODE_STEPS};

    #[test]
    fn cartpole_v1_truncates_at_exactly_500_steps() {
        let mut env = CartPole::v1();
        env.reset(Some(0));
        for step_index in 1..=V1_MAX_EPISODE_STEPS {
            // Hold the pole upright so the episode can only end by time.
            env.inner_mut().set_state([0.0; 4]);
            let step = env.step(step_index % 2).unwrap();
            assert!(!step.terminated);
            assert_eq!(step.truncated, step_index == V1_MAX_EPISODE_STEPS, "step {step_index}");
        }
        assert_eq!(env.step(0), Err(EnvError::EpisodeEnded { env: "CartPole-v1".into() }));
        env.reset(None);
        assert_eq!(env.elapsed_steps(), 0);
        assert!(env.step(0).is_ok());
    }

    #[test]
    fn termination_and_truncation_on_the_same_step_are_both_reported() {
        let mut env = TimeLimit::new(CartPole::default(), 1);
        env.reset(Some(0));
        env.inner_mut().set_state([2.4, 1.0, 0.0, 0.0]);
        let step = env.step(1).unwrap();
        assert!(step.terminated && step.truncated);
    }
}
