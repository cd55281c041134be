//! Vectorised environments: N copies stepped as one, with automatic reset
//! (Gymnasium's two conventions) and snapshots of all of them together.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::env::{Env, Snapshot, Step};
use crate::error::EnvError;

/// What a [`VecEnv`] does when one of its environments ends an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AutoresetMode {
    /// Reset in the same call (Stable-Baselines3's convention, Gymnasium's
    /// `AutoresetMode.SAME_STEP`). The returned `obs` is already the first
    /// observation of the next episode; the true last observation of the
    /// finished episode, which a learner needs to bootstrap a truncated
    /// transition, is in [`SubStep::final_obs`] (and its info in `final_info`).
    #[default]
    SameStep,
    /// Reset on the next call (Gymnasium 1.x's default, `NEXT_STEP`). The call
    /// that ends an episode returns its true last observation in `obs`; the
    /// following call ignores that environment's action, resets it and
    /// returns the reset observation with reward 0 and both flags false
    /// ([`SubStep::is_reset`] tells such a slot: it is not a transition).
    NextStep,
}

/// One environment's share of a vectorised step.
#[derive(Debug, Clone, PartialEq)]
pub struct SubStep<O, I> {
    /// Observation to act on next (see [`AutoresetMode`] for what it is after an episode ends).
    pub obs: O,
    /// Reward of the transition.
    pub reward: f64,
    /// The episode reached a terminal state on this step.
    pub terminated: bool,
    /// The episode was cut on this step.
    pub truncated: bool,
    /// Info of this step (of the reset, when the environment was reset by this call).
    pub info: I,
    /// With [`AutoresetMode::SameStep`]: the last observation of the episode that ended on this step.
    pub final_obs: Option<O>,
    /// With [`AutoresetMode::SameStep`]: the info of the step that ended the episode.
    pub final_info: Option<I>,
    /// The environment was reset instead of stepped (see [`SubStep::is_reset`]).
    reset: bool,
}

impl<O, I> SubStep<O, I> {
    /// The slot of an environment just reset: its observation and info, no reward, no flags.
    fn after_reset(obs: O, info: I) -> Self {
        Self {
            obs,
            reward: 0.0,
            terminated: false,
            truncated: false,
            info,
            final_obs: None,
            final_info: None,
            reset: true,
        }
    }

    /// Whether an episode ended on this step.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }

    /// Whether this slot is a reset, not a transition: after [`VecEnv::reset`],
    /// and with [`AutoresetMode::NextStep`] on the call after an episode
    /// ended (its action was ignored). A learner stores nothing for it.
    pub fn is_reset(&self) -> bool {
        self.reset
    }
}

/// The [`SubStep`] of environment type `E`.
pub type EnvSubStep<E> = SubStep<<E as Env>::Obs, <E as Env>::Info>;

/// N environments stepped together, with automatic reset.
///
/// Sub-environment `i` is seeded with `seed + i` by [`VecEnv::reset`], as in
/// Gymnasium; auto-resets then continue each environment's own stream, so the
/// results are the same whether the environments are stepped sequentially or
/// across threads ([`VecEnv::with_threads`]). Steps reuse the buffers of the
/// previous step: a step allocates only where an environment's own
/// observations do.
///
/// ```
/// use rlhf_env::{AutoresetMode, CartPole, VecEnv};
///
/// let mut envs = VecEnv::from_fn(4, |_| CartPole::v1())?.with_autoreset(AutoresetMode::SameStep);
/// envs.reset(Some(0)); // environment i is seeded with 0 + i
/// let mut episodes = 0;
/// for _ in 0..100 {
///     for slot in envs.step(&[0, 1, 0, 1])? {
///         if slot.done() {
///             // `obs` already starts the next episode; the last one's end is in `final_obs`.
///             assert!(slot.final_obs.is_some());
///             episodes += 1;
///         }
///     }
/// }
/// assert!(episodes > 0);
/// # Ok::<(), rlhf_env::EnvError>(())
/// ```
#[derive(Debug)]
pub struct VecEnv<E: Env> {
    envs: Vec<E>,
    /// The last step's results; empty before the first step after a restore.
    slots: Vec<EnvSubStep<E>>,
    /// Per environment, with [`AutoresetMode::NextStep`]: its episode ended,
    /// so the next call resets it.
    reset_pending: Vec<bool>,
    /// Reset at least once (or restored from a reset one).
    started: bool,
    mode: AutoresetMode,
    threaded: bool,
}

/// Everything a [`VecEnv`] needs to continue exactly: each environment's
/// [`Snapshot`] and which of them reset on the next call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VecEnvState<S> {
    /// Each environment's state, in order.
    pub envs: Vec<S>,
    /// Which environments reset on the next call ([`AutoresetMode::NextStep`]).
    pub reset_pending: Vec<bool>,
    /// Whether the environments had been reset.
    pub started: bool,
}

impl<E: Env> VecEnv<E> {
    /// The auto-reset convention.
    pub fn autoreset_mode(&self) -> AutoresetMode {
        self.mode
    }

    /// The number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// The environments.
    pub fn envs(&self) -> &[E] {
        &self.envs
    }
}

impl<E> VecEnv<E>
where
    E: Env + Send,
    E::Obs: Send,
    E::Action: Sync,
    E::Info: Send,
{
    /// Vectorises `envs`, which must not be empty.
    pub fn new(envs: Vec<E>) -> Result<Self, EnvError> {
        if envs.is_empty() {
            return Err(EnvError::InvalidConfig {
                field: "VecEnv.envs",
                reason: "needs at least one environment".into(),
            });
        }
        let n = envs.len();
        Ok(Self {
            envs,
            slots: Vec::new(),
            reset_pending: vec![false; n],
            started: false,
            mode: AutoresetMode::default(),
            threaded: false,
        })
    }

    /// `n` environments built by `make(i)`.
    pub fn from_fn(n: usize, make: impl FnMut(usize) -> E) -> Result<Self, EnvError> {
        Self::new((0..n).map(make).collect())
    }

    /// Chooses the auto-reset convention (default [`AutoresetMode::SameStep`]).
    pub fn with_autoreset(mut self, mode: AutoresetMode) -> Self {
        self.mode = mode;
        self
    }

    /// Steps the environments on rayon's thread pool instead of one after
    /// another, a few contiguous runs of environments per thread.
    pub fn with_threads(mut self, threaded: bool) -> Self {
        self.threaded = threaded;
        self
    }

    /// Resets every environment (environment `i` with `seed + i` when seeded)
    /// and returns their observations.
    pub fn reset(&mut self, seed: Option<u64>) -> &[EnvSubStep<E>] {
        self.slots.clear();
        for (i, env) in self.envs.iter_mut().enumerate() {
            let (obs, info) = env.reset(seed.map(|s| s.wrapping_add(i as u64)));
            self.slots.push(SubStep::after_reset(obs, info));
        }
        self.reset_pending.fill(false);
        self.started = true;
        &self.slots
    }

    /// Steps environment `i` with `actions[i]`, resetting finished episodes
    /// according to the [`AutoresetMode`].
    pub fn step(&mut self, actions: &[E::Action]) -> Result<&[EnvSubStep<E>], EnvError> {
        if !self.started {
            return Err(EnvError::NotReset { env: format!("VecEnv({})", self.envs[0].id()) });
        }
        if actions.len() != self.envs.len() {
            return Err(EnvError::ActionCount { expected: self.envs.len(), found: actions.len() });
        }
        let mode = self.mode;
        if self.slots.len() != self.envs.len() {
            // The first step after a restore: no results to overwrite yet.
            self.slots = (self.envs.iter_mut().zip(&mut self.reset_pending).zip(actions))
                .map(|((env, pending), action)| step_one(env, pending, action, mode))
                .collect::<Result<_, _>>()?;
            return Ok(&self.slots);
        }
        let step_all = |envs: &mut [E], pending: &mut [bool], slots: &mut [EnvSubStep<E>], actions: &[E::Action]| {
            envs.iter_mut().zip(pending).zip(slots).zip(actions).try_for_each(|(((env, pending), slot), action)| {
                *slot = step_one(env, pending, action, mode)?;
                Ok(())
            })
        };
        if self.threaded {
            // A few contiguous runs per thread: one task per environment would
            // cost more than a cheap environment's step (a CartPole's is ~30 ns).
            let run = self.envs.len().div_ceil(4 * rayon::current_num_threads()).max(1);
            self.envs
                .par_chunks_mut(run)
                .zip(self.reset_pending.par_chunks_mut(run))
                .zip(self.slots.par_chunks_mut(run))
                .zip(actions.par_chunks(run))
                .try_for_each(|(((envs, pending), slots), actions)| step_all(envs, pending, slots, actions))?;
        } else {
            step_all(&mut self.envs, &mut self.reset_pending, &mut self.slots, actions)?;
        }
        Ok(&self.slots)
    }
}

impl<E: Env + Snapshot> Snapshot for VecEnv<E> {
    type State = VecEnvState<E::State>;

    fn snapshot(&self) -> Self::State {
        VecEnvState {
            envs: self.envs.iter().map(Snapshot::snapshot).collect(),
            reset_pending: self.reset_pending.clone(),
            started: self.started,
        }
    }

    /// Restores every environment; the next [`VecEnv::step`] continues their
    /// episodes. A state of another number of environments leaves the extra
    /// ones as they are (build the `VecEnv` with the same count).
    fn restore(&mut self, state: Self::State) {
        for (env, env_state) in self.envs.iter_mut().zip(state.envs) {
            env.restore(env_state);
        }
        for (pending, saved) in self.reset_pending.iter_mut().zip(state.reset_pending) {
            *pending = saved;
        }
        self.started = state.started;
        self.slots.clear();
    }
}

/// Steps (or, when its reset is pending, resets) one environment.
fn step_one<E: Env>(
    env: &mut E,
    reset_pending: &mut bool,
    action: &E::Action,
    mode: AutoresetMode,
) -> Result<EnvSubStep<E>, EnvError> {
    if std::mem::take(reset_pending) {
        let (obs, info) = env.reset(None);
        return Ok(SubStep::after_reset(obs, info));
    }
    let Step { obs, reward, terminated, truncated, info } = env.step(action.clone())?;
    let mut slot =
        SubStep { obs, reward, terminated, truncated, info, final_obs: None, final_info: None, reset: false };
    if terminated || truncated {
        match mode {
            AutoresetMode::SameStep => {
                let (reset_obs, reset_info) = env.reset(None);
                slot.final_obs = Some(std::mem::replace(&mut slot.obs, reset_obs));
                slot.final_info = Some(std::mem::replace(&mut slot.info, reset_info));
            }
            AutoresetMode::NextStep => *reset_pending = true,
        }
    }
    Ok(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::cartpole::CartPole;
    use crate::wrappers::TimeLimit;

    /// (obs, reward, terminated, truncated, final_obs) of every sub-step.
    type Record = ([f32; 4], f64, bool, bool, Option<[f32; 4]>);

    fn run(vec_env: &mut VecEnv<TimeLimit<CartPole>>, steps: usize) -> Vec<Record> {
        let mut out = Vec::new();
        vec_env.reset(Some(10));
        for t in 0..steps {
            let actions: Vec<usize> = (0..vec_env.num_envs()).map(|i| (t * 7 + i * 3) % 5 % 2).collect();
            for s in vec_env.step(&actions).unwrap() {
                out.push((s.obs, s.reward, s.terminated, s.truncated, s.final_obs));
            }
        }
        out
    }

    #[test]
    fn threaded_and_sequential_stepping_agree() {
        // 5 environments: a run each; 37 (a prime): runs of several, the last one shorter.
        for n in [5, 37] {
            let mut sequential = VecEnv::from_fn(n, |_| CartPole::v1()).unwrap();
            let mut threaded = VecEnv::from_fn(n, |_| CartPole::v1()).unwrap().with_threads(true);
            assert_eq!(run(&mut sequential, 300), run(&mut threaded, 300));
        }
    }

    #[test]
    fn same_step_autoreset_matches_a_single_env_and_keeps_the_final_obs() {
        let mut vec_env = VecEnv::from_fn(2, |_| CartPole::v1()).unwrap();
        let mut single = CartPole::v1();
        let first = vec_env.reset(Some(5))[1].obs;
        assert_eq!(first, single.reset(Some(6)).0, "sub-env 1 gets seed + 1");
        let mut episodes = 0;
        for _ in 0..200 {
            let subs = vec_env.step(&[0, 0]).unwrap();
            let step = single.step(0).unwrap();
            let sub = &subs[1];
            assert_eq!((sub.reward, sub.terminated, sub.truncated), (step.reward, step.terminated, step.truncated));
            let expected_obs = if step.done() {
                episodes += 1;
                assert_eq!(sub.final_obs, Some(step.obs));
                single.reset(None).0
            } else {
                assert_eq!(sub.final_obs, None);
                step.obs
            };
            assert_eq!(sub.obs, expected_obs);
        }
        assert!(episodes >= 5, "always pushing left ends episodes quickly");
    }

    #[test]
    fn next_step_autoreset_resets_on_the_following_call() {
        let mut vec_env = VecEnv::from_fn(1, |_| CartPole::v1()).unwrap().with_autoreset(AutoresetMode::NextStep);
        vec_env.reset(Some(0));
        let last_obs = loop {
            let sub = &vec_env.step(&[1]).unwrap()[0];
            if sub.terminated {
                assert_eq!(sub.final_obs, None);
                break sub.obs;
            }
        };
        // The true last observation is past the 12° threshold (pushing right tips the pole left).
        assert!(last_obs[2] < -0.2094, "{last_obs:?}");
        let sub = &vec_env.step(&[1]).unwrap()[0];
        assert_eq!((sub.reward, sub.terminated, sub.truncated), (0.0, false, false));
        assert!(sub.is_reset(), "the slot says it is a reset, not a transition");
        assert!(sub.obs.iter().all(|v| v.abs() <= 0.05), "a reset observation: {:?}", sub.obs);
        assert!(!vec_env.step(&[1]).unwrap()[0].is_reset(), "then ordinary steps again");
        assert_eq!(vec_env.autoreset_mode(), AutoresetMode::NextStep);
    }

    #[test]
    fn only_resets_are_marked_as_resets_with_same_step_autoreset() {
        let mut vec_env = VecEnv::from_fn(3, |_| CartPole::v1()).unwrap();
        assert!(vec_env.reset(Some(1)).iter().all(SubStep::is_reset));
        for _ in 0..100 {
            assert!(vec_env.step(&[0, 1, 0]).unwrap().iter().all(|s| !s.is_reset()));
        }
        assert_eq!(vec_env.autoreset_mode(), AutoresetMode::SameStep);
    }

    #[test]
    fn a_restored_vec_env_continues_exactly() {
        for mode in [AutoresetMode::SameStep, AutoresetMode::NextStep] {
            let make = || VecEnv::from_fn(3, |_| CartPole::v1()).unwrap().with_autoreset(mode);
            let actions = |t: usize| [t % 2, (t / 3) % 2, (t / 7) % 2];
            let mut original = make();
            original.reset(Some(7));
            for t in 0..40 {
                original.step(&actions(t)).unwrap();
            }
            let state = original.snapshot();
            let json = serde_json::to_string(&state).unwrap();
            let mut restored = make();
            assert!(restored.step(&actions(0)).is_err(), "never reset");
            restored.restore(serde_json::from_str(&json).unwrap());
            for t in 40..300 {
                let a: Vec<_> = original.step(&actions(t)).unwrap().to_vec();
                let b: Vec<_> = restored.step(&actions(t)).unwrap().to_vec();
                assert_eq!(a, b, "{mode:?} step {t}");
            }
        }
    }

    #[test]
    fn misuse_is_an_error() {
        assert!(matches!(VecEnv::<CartPole>::new(vec![]), Err(EnvError::InvalidConfig { field: "VecEnv.envs", .. })));
        let mut vec_env = VecEnv::from_fn(3, |_| CartPole::v1()).unwrap();
        assert_eq!(vec_env.step(&[0, 0, 0]).unwrap_err(), EnvError::NotReset { env: "VecEnv(CartPole-v1)".into() });
        vec_env.reset(Some(0));
        assert_eq!(vec_env.step(&[0]).unwrap_err(), EnvError::ActionCount { expected: 3, found: 1 });
        assert!(matches!(vec_env.step(&[0, 5, 0]), Err(EnvError::InvalidAction { .. })));
    }

    #[test]
    fn sub_envs_get_consecutive_seeds() {
        let mut vec_env = VecEnv::from_fn(3, |_| CartPole::v1()).unwrap();
        let observations: Vec<[f32; 4]> = vec_env.reset(Some(100)).iter().map(|s| s.obs).collect();
        for (i, obs) in observations.iter().enumerate() {
            assert_eq!(*obs, CartPole::v1().reset(Some(100 + i as u64)).0);
        }
    }
}
