//! Vectorised environments: N copies stepped as one.

use rayon::prelude::*;

use crate::env::{Env, Step};
use crate::error::EnvError;

/// What a [`VecEnv`] does when one of its environments ends an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// returns the reset observation with reward 0 and both flags false.
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
    /// With [`AutoresetMode::NextStep`]: the episode ended last call, so this call resets.
    reset_pending: bool,
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
            reset_pending: false,
        }
    }

    /// Whether an episode ended on this step.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
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
#[derive(Debug)]
pub struct VecEnv<E: Env> {
    envs: Vec<E>,
    slots: Vec<EnvSubStep<E>>,
    mode: AutoresetMode,
    threaded: bool,
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
        Ok(Self { envs, slots: Vec::new(), mode: AutoresetMode::default(), threaded: false })
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

    /// The number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// The environments.
    pub fn envs(&self) -> &[E] {
        &self.envs
    }

    /// Resets every environment (environment `i` with `seed + i` when seeded)
    /// and returns their observations.
    pub fn reset(&mut self, seed: Option<u64>) -> &[EnvSubStep<E>] {
        self.slots.clear();
        for (i, env) in self.envs.iter_mut().enumerate() {
            let (obs, info) = env.reset(seed.map(|s| s.wrapping_add(i as u64)));
            self.slots.push(SubStep::after_reset(obs, info));
        }
        &self.slots
    }

    /// Steps environment `i` with `actions[i]`, resetting finished episodes
    /// according to the [`AutoresetMode`].
    pub fn step(&mut self, actions: &[E::Action]) -> Result<&[EnvSubStep<E>], EnvError> {
        if self.slots.is_empty() {
            return Err(EnvError::NotReset { env: format!("VecEnv({})", self.envs[0].id()) });
        }
        if actions.len() != self.envs.len() {
            return Err(EnvError::ActionCount { expected: self.envs.len(), found: actions.len() });
        }
        let mode = self.mode;
        let step_all = |envs: &mut [E], slots: &mut [EnvSubStep<E>], actions: &[E::Action]| {
            envs.iter_mut()
                .zip(slots)
                .zip(actions)
                .try_for_each(|((env, slot), action)| step_one(env, slot, action, mode))
        };
        if self.threaded {
            // A few contiguous runs per thread: one task per environment would
            // cost more than a cheap environment's step (a CartPole's is ~30 ns).
            let run = self.envs.len().div_ceil(4 * rayon::current_num_threads()).max(1);
            self.envs
                .par_chunks_mut(run)
                .zip(self.slots.par_chunks_mut(run))
                .zip(actions.par_chunks(run))
                .try_for_each(|((envs, slots), actions)| step_all(envs, slots, actions))?;
        } else {
            step_all(&mut self.envs, &mut self.slots, actions)?;
        }
        Ok(&self.slots)
    }
}

fn step_one<E: Env>(
    env: &mut E,
    slot: &mut EnvSubStep<E>,
    action: &E::Action,
    mode: AutoresetMode,
) -> Result<(), EnvError> {
    slot.final_obs = None;
    slot.final_info = None;
    if slot.reset_pending {
        let (obs, info) = env.reset(None);
        *slot = SubStep::after_reset(obs, info);
        return Ok(());
    }
    let Step { obs, reward, terminated, truncated, info } = env.step(action.clone())?;
    slot.reward = reward;
    slot.terminated = terminated;
    slot.truncated = truncated;
    if !(terminated || truncated) {
        slot.obs = obs;
        slot.info = info;
        return Ok(());
    }
    match mode {
        AutoresetMode::SameStep => {
            let (reset_obs, reset_info) = env.reset(None);
            slot.final_obs = Some(obs);
            slot.final_info = Some(info);
            slot.obs = reset_obs;
            slot.info = reset_info;
        }
        AutoresetMode::NextStep => {
            slot.obs = obs;
            slot.info = info;
            slot.reset_pending = true;
        }
    }
    Ok(())
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
        assert!(sub.obs.iter().all(|v| v.abs() <= 0.05), "a reset observation: {:?}", sub.obs);
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
