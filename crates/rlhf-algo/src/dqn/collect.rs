//! The one collection loop of DQN: act ε-greedily in one or many
//! environments, store transitions (n-step returns when asked), take
//! gradient steps on the schedule, and report to the callbacks.
//!
//! [`Dqn::learn`] runs it on one environment and [`Dqn::learn_vec`] on a
//! [`VecEnv`]; both go through [`Collect`], so they behave the same, and
//! the episodes in progress, their returns and lengths and the n-step
//! windows persist across calls and in checkpoints. Every period of the
//! schedule counts environment steps, whatever the number of environments.

use std::collections::VecDeque;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use rlhf_env::rng::{uniform_f64, uniform_index};
use rlhf_env::{AutoresetMode, Env, EpisodeOutcome, Snapshot, VecEnv};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::agent::{Dqn, Networks};
use super::persistence::snapshot_json;
use super::store::{FlatObs, ReplayStore, write_row};
use crate::callbacks::{self, Callback, TrainEvent};
use crate::error::AlgoError;

/// From this many environments, greedy actions come from one batched
/// forward pass on the backend instead of the host copy of the network,
/// row by row (which costs microseconds a row and no launch).
const BATCHED_ACTING_FROM: usize = 64;

/// Where collection stands between calls (and in checkpoints).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Collection {
    /// One per environment.
    slots: Vec<Slot>,
}

impl Collection {
    pub(super) fn num_envs(&self) -> usize {
        self.slots.len()
    }
}

impl Slot {
    /// Makes `obs` the observation to act on.
    fn observe(&mut self, obs: &impl FlatObs, dim: usize) -> Result<(), AlgoError> {
        write_row(obs, &mut self.obs, dim)?;
        self.input.clear();
        obs.write_network_input(&mut self.input);
        Ok(())
    }
}

/// One environment's episode in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slot {
    /// The observation to act on, as a flat row.
    obs: Vec<f32>,
    /// Its network input ([`FlatObs::write_network_input`]).
    input: Vec<f32>,
    episode_return: f64,
    length: usize,
    /// With n-step returns: the last transitions not yet stored, oldest first.
    window: VecDeque<Pending>,
}

/// A transition waiting for the rewards of the steps after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pending {
    obs: Vec<f32>,
    action: usize,
    reward: f64,
}

/// One environment's share of a vector step, as the loop needs it.
pub(super) struct SlotStep<'a, O, I> {
    /// The observation the transition ends in (an episode's true last one).
    last: &'a O,
    /// The observation to act on next (the reset one after an auto-reset).
    next: &'a O,
    reward: f64,
    terminated: bool,
    truncated: bool,
    /// The info of the step (of the episode's last step when it ended).
    info: &'a I,
    /// Not a transition: the environment was only reset.
    reset_only: bool,
}

/// Environments the loop collects from: one [`Env`] or a [`VecEnv`].
pub(super) trait Collect {
    type Obs: FlatObs;
    type Info: EpisodeOutcome;

    fn num_envs(&self) -> usize;

    fn env_id(&self) -> &str;

    /// Resets environment `i` with `seed + i`, writing each first observation through `first`.
    fn reset(
        &mut self,
        seed: u64,
        first: impl FnMut(usize, &Self::Obs) -> Result<(), AlgoError>,
    ) -> Result<(), AlgoError>;

    /// Steps environment `i` with `actions[i]`, passing each result to `each`.
    fn step(
        &mut self,
        actions: &[usize],
        each: impl FnMut(usize, SlotStep<'_, Self::Obs, Self::Info>) -> Result<(), AlgoError>,
    ) -> Result<(), AlgoError>;

    /// The environments' state, for a checkpoint.
    fn snapshot(&self) -> Result<Box<RawValue>, AlgoError>;
}

/// One environment, reset as soon as an episode ends.
pub(super) struct Single<'a, E>(pub(super) &'a mut E);

impl<E> Collect for Single<'_, E>
where
    E: Env<Action = usize> + Snapshot,
    E::Obs: FlatObs,
    E::Info: EpisodeOutcome,
{
    type Obs = E::Obs;
    type Info = E::Info;

    fn num_envs(&self) -> usize {
        1
    }

    fn env_id(&self) -> &str {
        self.0.id()
    }

    fn reset(
        &mut self,
        seed: u64,
        mut first: impl FnMut(usize, &E::Obs) -> Result<(), AlgoError>,
    ) -> Result<(), AlgoError> {
        first(0, &self.0.reset(Some(seed)).0)
    }

    fn step(
        &mut self,
        actions: &[usize],
        mut each: impl FnMut(usize, SlotStep<'_, E::Obs, E::Info>) -> Result<(), AlgoError>,
    ) -> Result<(), AlgoError> {
        let step = self.0.step(actions[0])?;
        let (terminated, truncated) = (step.terminated, step.truncated);
        let slot = |next| SlotStep {
            last: &step.obs,
            next,
            reward: step.reward,
            terminated,
            truncated,
            info: &step.info,
            reset_only: false,
        };
        if step.done() {
            let (first, _) = self.0.reset(None);
            each(0, slot(&first))
        } else {
            each(0, slot(&step.obs))
        }
    }

    fn snapshot(&self) -> Result<Box<RawValue>, AlgoError> {
        snapshot_json(self.0)
    }
}

impl<E> Collect for VecEnv<E>
where
    E: Env<Action = usize> + Snapshot + Send,
    E::Obs: FlatObs + Send,
    E::Info: EpisodeOutcome + Send,
{
    type Obs = E::Obs;
    type Info = E::Info;

    fn num_envs(&self) -> usize {
        VecEnv::num_envs(self)
    }

    fn env_id(&self) -> &str {
        self.envs()[0].id()
    }

    fn reset(
        &mut self,
        seed: u64,
        mut first: impl FnMut(usize, &E::Obs) -> Result<(), AlgoError>,
    ) -> Result<(), AlgoError> {
        VecEnv::reset(self, Some(seed)).iter().enumerate().try_for_each(|(i, slot)| first(i, &slot.obs))
    }

    fn step(
        &mut self,
        actions: &[usize],
        mut each: impl FnMut(usize, SlotStep<'_, E::Obs, E::Info>) -> Result<(), AlgoError>,
    ) -> Result<(), AlgoError> {
        let same_step = self.autoreset_mode() == AutoresetMode::SameStep;
        for (i, slot) in VecEnv::step(self, actions)?.iter().enumerate() {
            // After a same-step reset `obs` starts the next episode; the
            // transition ends in `final_obs`. With next-step resets `obs`
            // is the true last observation and the reset comes as its own slot.
            let ended_here = same_step && slot.done();
            let last = if ended_here { slot.final_obs.as_ref() } else { Some(&slot.obs) };
            let info = if ended_here { slot.final_info.as_ref() } else { Some(&slot.info) };
            let (Some(last), Some(info)) = (last, info) else {
                return Err(AlgoError::Unsupported {
                    what: "a VecEnv slot that ended an episode without its final observation".into(),
                    reason: "same-step auto-reset must keep it".into(),
                });
            };
            each(
                i,
                SlotStep {
                    last,
                    next: &slot.obs,
                    reward: slot.reward,
                    terminated: slot.terminated,
                    truncated: slot.truncated,
                    info,
                    reset_only: slot.is_reset(),
                },
            )?;
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Box<RawValue>, AlgoError> {
        snapshot_json(self)
    }
}

impl<B: AutodiffBackend> Dqn<B> {
    /// Trains for `steps` more environment steps on `env`, reporting every
    /// event to `callbacks`; returns whether a callback stopped training early.
    ///
    /// The first call resets `env` with the config's seed; later calls
    /// carry on the same episode, so `learn(env, a)` then `learn(env, b)` is
    /// the same as `learn(env, a + b)`. Exploration follows the schedule over
    /// `config.total_timesteps`. It is [`Dqn::learn_vec`] on one environment.
    ///
    /// ```
    /// use rlhf_algo::callbacks::observer;
    /// use rlhf_algo::dqn::{Dqn, DqnConfig};
    /// use rlhf_env::CartPole;
    /// use rlhf_model::backend::{AutodiffCpu, cpu_device};
    ///
    /// let mut env = CartPole::v1();
    /// let config = DqnConfig { learning_starts: 200, ..DqnConfig::default() };
    /// let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device())?;
    /// let mut episodes = 0;
    /// agent.learn(&mut env, 300, &mut [&mut observer(|event| {
    ///     if let rlhf_algo::callbacks::TrainEvent::Episode { .. } = event {
    ///         episodes += 1;
    ///     }
    /// })])?;
    /// assert_eq!(agent.num_timesteps(), 300);
    /// assert!(episodes > 3);
    /// # Ok::<(), rlhf_algo::AlgoError>(())
    /// ```
    pub fn learn<E>(
        &mut self,
        env: &mut E,
        steps: u64,
        callbacks: &mut [&mut dyn Callback<B>],
    ) -> Result<bool, AlgoError>
    where
        E: Env<Action = usize> + Snapshot,
        E::Obs: FlatObs,
        E::Info: EpisodeOutcome,
    {
        self.collect(&mut Single(env), steps, callbacks)
    }

    /// Trains for `vec_steps` steps of `envs`, each one environment step of
    /// every environment (Stable-Baselines3's `n_envs`). Returns whether a
    /// callback stopped training early.
    ///
    /// The environment-step counter advances by `envs.num_envs()` per vector
    /// step, and every period counts environment steps: the exploration
    /// schedule, `learning_starts`, `target_update_interval`, the
    /// callbacks' periods, and `train_freq` (a vector step that crosses k
    /// multiples of it takes k × `gradient_steps` gradient steps). So the
    /// number of environments changes how experience is collected, not how
    /// many updates each environment step buys. (Stable-Baselines3 counts
    /// `train_freq` in vector steps instead: with 8 environments its
    /// defaults update 8 times less per environment step, and CartPole's
    /// default config then solved 0 of 10 seeds in 100,000 steps.) From 64
    /// environments on, greedy actions come from one batched forward pass on
    /// the backend. A finished episode's transition ends in its true last
    /// observation (`final_obs`, or `obs` with next-step auto-reset, whose
    /// reset slots are not stored). Hindsight replay reads whole episodes
    /// in order, so it needs one environment.
    pub fn learn_vec<E>(
        &mut self,
        envs: &mut VecEnv<E>,
        vec_steps: u64,
        callbacks: &mut [&mut dyn Callback<B>],
    ) -> Result<bool, AlgoError>
    where
        E: Env<Action = usize> + Snapshot + Send,
        E::Obs: FlatObs + Send,
        E::Info: EpisodeOutcome + Send,
    {
        if envs.num_envs() > 1 && matches!(self.replay, ReplayStore::Hindsight(_)) {
            return Err(AlgoError::Unsupported {
                what: "hindsight replay with several environments".into(),
                reason: "relabeling reads whole episodes in order; use one environment".into(),
            });
        }
        let steps = vec_steps.saturating_mul(envs.num_envs() as u64);
        self.collect(envs, steps, callbacks)
    }

    fn collect<C: Collect>(
        &mut self,
        envs: &mut C,
        steps: u64,
        callbacks: &mut [&mut dyn Callback<B>],
    ) -> Result<bool, AlgoError> {
        let n = envs.num_envs();
        let dim = self.replay.row_dim();
        if self.collection.is_none() {
            let empty =
                Slot { obs: Vec::new(), input: Vec::new(), episode_return: 0.0, length: 0, window: VecDeque::new() };
            let mut slots = vec![empty; n];
            envs.reset(self.config.seed, |i, obs| slots[i].observe(obs, dim))?;
            self.collection = Some(Collection { slots });
        }
        if let Some(collection) = &self.collection
            && collection.num_envs() != n
        {
            return Err(AlgoError::Unsupported {
                what: format!("continuing with {n} environments"),
                reason: format!("the agent's episodes in progress are in {}", collection.num_envs()),
            });
        }
        let schedule = self.config.exploration_schedule();
        let mut actions = vec![0usize; n];
        let mut next_row = Vec::with_capacity(dim);
        let mut spare_rows = Vec::new();
        let mut events = Vec::new();
        let end = self.num_timesteps.saturating_add(steps);
        while self.num_timesteps < end {
            let epsilon = schedule.value(self.num_timesteps, self.config.total_timesteps);
            self.choose_actions(epsilon, &mut actions)?;
            let Some(collection) = self.collection.as_mut() else { break };
            let steps_after = self.num_timesteps + n as u64;
            let (replay, n_steps, gamma) = (&mut self.replay, self.config.n_steps, self.config.gamma);
            envs.step(&actions, |i, step| {
                let slot = &mut collection.slots[i];
                if step.reset_only {
                    return slot.observe(step.next, dim);
                }
                write_row(step.last, &mut next_row, dim)?;
                let done = step.terminated || step.truncated;
                let transition = (actions[i], step.reward, step.terminated, done);
                store(replay, slot, &mut spare_rows, transition, &next_row, n_steps, gamma)?;
                slot.episode_return += step.reward;
                slot.length += 1;
                if done {
                    events.push(TrainEvent::Episode {
                        step: steps_after,
                        episode_return: slot.episode_return,
                        length: slot.length,
                        epsilon,
                        success: step.info.is_success(),
                    });
                    (slot.episode_return, slot.length) = (0.0, 0);
                }
                slot.observe(step.next, dim)
            })?;
            let before = self.num_timesteps;
            self.num_timesteps = steps_after;

            // Learn: `gradient_steps` for every multiple of `train_freq`
            // environment steps this vector step crossed (one, with one
            // environment, at the multiples). Move the target network when
            // its interval was crossed.
            let bursts = self.num_timesteps / self.config.train_freq - before / self.config.train_freq;
            if self.num_timesteps > self.config.learning_starts && bursts > 0 && !self.replay.is_empty() {
                events.push(self.train_burst(bursts * self.config.gradient_steps)?);
                self.acting = self.networks.acting()?;
            }
            let interval = self.config.target_update_interval;
            if before / interval != self.num_timesteps / interval {
                self.update_target()?;
            }

            events.push(TrainEvent::Step { step: self.num_timesteps, n_envs: n as u64 });
            let dispatched = callbacks::dispatch(self, callbacks, events.drain(..))?;
            for dir in &dispatched.checkpoints {
                for callback in callbacks.iter_mut() {
                    callback.on_checkpoint()?;
                }
                self.save_state(dir, envs.env_id(), envs.snapshot()?, &callbacks::states(callbacks), &[])?;
            }
            if dispatched.flow.is_break() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// ε-greedy actions for every environment: random ones first (one
    /// draw each, in order), then the greedy ones.
    fn choose_actions(&mut self, epsilon: f64, actions: &mut [usize]) -> Result<(), AlgoError> {
        let warming_up = self.num_timesteps < self.config.learning_starts;
        let mut exploiting = 0;
        for action in actions.iter_mut() {
            *action = if warming_up || uniform_f64(&mut self.rng, 0.0, 1.0) < epsilon {
                uniform_index(&mut self.rng, self.n_actions)
            } else {
                exploiting += 1;
                usize::MAX // greedy: filled in below
            };
        }
        if exploiting == 0 {
            return Ok(());
        }
        let Some(collection) = &self.collection else { return Ok(()) };
        if actions.len() < BATCHED_ACTING_FROM {
            for (action, slot) in actions.iter_mut().zip(&collection.slots) {
                if *action == usize::MAX {
                    *action = self.acting.greedy_action(&slot.input)?;
                }
            }
            return Ok(());
        }
        let inputs: Vec<f32> = collection.slots.iter().flat_map(|slot| slot.input.iter().copied()).collect();
        let greedy = match &mut self.networks {
            Networks::Host(host) => host.greedy_actions(&inputs, actions.len())?,
            Networks::Burn { online, .. } => {
                let rows = TensorData::new(inputs, [actions.len(), self.obs_dim]);
                let best = online.valid().forward(Tensor::from_data(rows, &self.device)).argmax(1).into_data();
                best.iter::<i64>().map(|b| usize::try_from(b).unwrap_or(0)).collect()
            }
        };
        for (action, best) in actions.iter_mut().zip(greedy) {
            if *action == usize::MAX {
                *action = best;
            }
        }
        Ok(())
    }
}

/// Stores a transition `(slot.obs, action, reward, next_row)`; with
/// `n_steps` > 1 on plain replay, as the n-step transition of the step
/// `n_steps - 1` earlier (and, when the episode ends, those of every
/// waiting step): `R = r_t + γ r_{t+1} + … + γ^{k-1} r_{t+k-1}`, bootstrapped
/// from the latest observation with `γ^k`, not at all after a termination.
/// Hindsight replay stores single steps: it computes n-step returns when it
/// samples, under the relabeled goal. `spare` holds the rows of stored
/// windows for reuse, so the steady state allocates nothing.
fn store(
    replay: &mut ReplayStore,
    slot: &mut Slot,
    spare: &mut Vec<Vec<f32>>,
    (action, reward, terminated, done): (usize, f64, bool, bool),
    next_row: &[f32],
    n_steps: usize,
    gamma: f64,
) -> Result<(), AlgoError> {
    if n_steps <= 1 || matches!(replay, ReplayStore::Hindsight(_)) {
        return replay.push(&slot.obs, action, reward as f32, next_row, terminated, done, 1);
    }
    let mut obs = spare.pop().unwrap_or_default();
    obs.clear();
    obs.extend_from_slice(&slot.obs);
    slot.window.push_back(Pending { obs, action, reward });
    while slot.window.len() == n_steps || (done && !slot.window.is_empty()) {
        let n_step_return = slot.window.iter().rev().fold(0.0, |later, step| step.reward + gamma * later);
        let k = u8::try_from(slot.window.len()).unwrap_or(u8::MAX);
        if let Some(first) = slot.window.pop_front() {
            replay.push(&first.obs, first.action, n_step_return as f32, next_row, terminated, done, k)?;
            spare.push(first.obs);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callbacks::observer;
    use crate::dqn::DqnConfig;
    use crate::evaluation::evaluate;
    use crate::policy::RandomPolicy;
    use crate::replay::ReplayBatch;
    use rlhf_env::rng::seeded_rng;
    use rlhf_env::{BitFlipping, CartPole, TimeLimit};
    use rlhf_model::backend::{AutodiffCpu, cpu_device};

    fn config(total_timesteps: u64) -> DqnConfig {
        DqnConfig {
            seed: 4,
            total_timesteps,
            learning_rate: 1e-3,
            buffer_size: 20_000,
            learning_starts: 480,
            batch_size: 64,
            train_freq: 2,
            gradient_steps: 3,
            target_update_interval: 250,
            exploration_fraction: 0.3,
            exploration_final_eps: 0.05,
            ..DqnConfig::default()
        }
    }

    fn cartpoles(n: usize, threaded: bool) -> VecEnv<TimeLimit<CartPole>> {
        VecEnv::from_fn(n, |_| CartPole::v1()).unwrap().with_threads(threaded)
    }

    fn agent(config: DqnConfig) -> Dqn<AutodiffCpu> {
        Dqn::<AutodiffCpu>::for_env(config, &CartPole::v1(), cpu_device()).unwrap()
    }

    /// Every event of `learn_vec` calls of `chunks` vector steps each, and the final Q-values.
    fn run_in_chunks(config: DqnConfig, n: usize, chunks: &[u64]) -> (Vec<TrainEvent>, Vec<f32>, u64) {
        let mut agent = agent(config);
        let mut envs = cartpoles(n, false);
        let mut events = Vec::new();
        for &chunk in chunks {
            agent.learn_vec(&mut envs, chunk, &mut [&mut observer(|e| events.push(e.clone()))]).unwrap();
        }
        let q = agent.greedy_policy().q_values(&[0.01, 0.2, -0.03, 0.1]).unwrap().to_vec();
        (events, q, agent.gradient_updates())
    }

    #[test]
    fn every_period_counts_environment_steps() {
        let mut agent = agent(config(10_000));
        let (mut episodes, mut bursts, mut steps) = (0, 0, 0);
        let mut count = observer(|event| match event {
            TrainEvent::Episode { .. } => episodes += 1,
            TrainEvent::Train { .. } => bursts += 1,
            TrainEvent::Step { n_envs, .. } => steps += n_envs,
            TrainEvent::Eval { .. } => {}
        });
        agent.learn_vec(&mut cartpoles(8, false), 100, &mut [&mut count]).unwrap();
        assert_eq!((agent.num_timesteps(), steps), (800, 800));
        // Updates start once more than 480 steps were taken (vector step 61,
        // 488 steps); each vector step of 8 environment steps crosses four
        // multiples of train_freq 2, so 4 × 3 gradient steps each: 40 bursts.
        assert_eq!(bursts, 40);
        assert_eq!(agent.gradient_updates(), 40 * 12);
        // 800 random-ish CartPole steps end dozens of episodes.
        assert!(episodes > 10, "{episodes} episodes");
    }

    /// The bug of the first vectorised loop: each call restarted the
    /// `train_freq` count and reset every environment, so calls shorter than
    /// `train_freq` vector steps never trained and cut every episode.
    #[test]
    fn calls_shorter_than_train_freq_train_and_keep_their_episodes() {
        let config = DqnConfig { train_freq: 16, learning_starts: 200, ..config(4_000) };
        let whole = run_in_chunks(config.clone(), 32, &[60]);
        let chunked = run_in_chunks(config, 32, &[3; 20]);
        assert!(whole.2 > 0, "the whole run trains");
        assert_eq!(whole, chunked, "three vector steps at a time is the same run");
        let longest = whole.0.iter().filter_map(|e| match e {
            TrainEvent::Episode { length, .. } => Some(*length),
            _ => None,
        });
        assert!(longest.max().unwrap_or(0) > 3, "episodes outlive a call");
    }

    #[test]
    fn threads_do_not_change_the_run() {
        let run = |threaded| {
            let mut agent = agent(config(4_000));
            let mut events = Vec::new();
            agent
                .learn_vec(&mut cartpoles(16, threaded), 250, &mut [&mut observer(|e| events.push(e.clone()))])
                .unwrap();
            (events, agent.greedy_policy().q_values(&[0.01, 0.2, -0.03, 0.1]).unwrap().to_vec())
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn one_environment_is_the_single_environment_loop() {
        let total = 3_000;
        let (mut vectorised, mut single) = (agent(config(total)), agent(config(total)));
        let (mut events_vec, mut events_single) = (Vec::new(), Vec::new());
        let mut record_vec = observer(|e| events_vec.push(e.clone()));
        vectorised.learn_vec(&mut cartpoles(1, false), total, &mut [&mut record_vec]).unwrap();
        let mut record_single = observer(|e| events_single.push(e.clone()));
        single.learn(&mut CartPole::v1(), total, &mut [&mut record_single]).unwrap();
        assert_eq!(events_vec, events_single);
        let obs = [0.01, 0.2, -0.03, 0.1];
        assert_eq!(vectorised.greedy_policy().q_values(&obs).unwrap(), single.greedy_policy().q_values(&obs).unwrap());
    }

    #[test]
    fn many_environments_learn_cartpole() {
        // One gradient step per four environment steps, as the single
        // environment smoke test; seeds 4-6 scored 343, 118 and 149 when
        // this was written (a random policy: about 24).
        let total = 12_000;
        let mut agent = agent(DqnConfig { train_freq: 4, gradient_steps: 1, ..config(total) });
        agent.learn_vec(&mut cartpoles(8, true), total / 8, &mut []).unwrap();
        let mut eval_env = CartPole::v1();
        let trained = agent.evaluate(&mut eval_env, 10, 777).unwrap();
        let mut random = RandomPolicy::new(*eval_env.action_space(), 0);
        let baseline = evaluate(&mut eval_env, &mut random, 10, 777).unwrap();
        assert!(
            trained.mean_return >= 4.0 * baseline.mean_return,
            "{} vs {}",
            trained.mean_return,
            baseline.mean_return
        );
    }

    /// Every stored transition of a run that never trains, drawn from the buffer.
    fn stored_rewards(agent: &Dqn<AutodiffCpu>) -> (usize, Vec<f32>) {
        let ReplayStore::Transitions(buffer) = &agent.replay else { panic!("plain replay") };
        let mut batch = ReplayBatch::default();
        buffer.sample_into(20 * buffer.len(), &mut seeded_rng(0), &mut batch).unwrap();
        (buffer.len(), batch.rewards)
    }

    /// The bug of the first vectorised loop with next-step auto-reset: the
    /// reset slot (reward 0, the reset observation) was stored as a
    /// transition from the episode's last observation.
    #[test]
    fn next_step_autoreset_stores_no_reset_as_a_transition() {
        let mut agent = agent(DqnConfig { learning_starts: u64::MAX, ..config(10_000) });
        let mut envs = cartpoles(4, false).with_autoreset(AutoresetMode::NextStep);
        let mut episodes = 0;
        let mut count = observer(|e| episodes += usize::from(matches!(e, TrainEvent::Episode { .. })));
        agent.learn_vec(&mut envs, 500, &mut [&mut count]).unwrap();
        let (stored, rewards) = stored_rewards(&agent);
        assert!(episodes > 20, "{episodes} episodes");
        // One vector step per ended episode only resets its environment.
        assert_eq!(stored, 4 * 500 - episodes + envs_pending(&envs));
        assert!(rewards.iter().all(|&r| r == 1.0), "a CartPole transition always pays 1");
    }

    /// Environments whose episode ended on the last call (their reset is still to come).
    fn envs_pending(envs: &VecEnv<TimeLimit<CartPole>>) -> usize {
        Snapshot::snapshot(envs).reset_pending.iter().filter(|&&p| p).count()
    }

    #[test]
    fn a_vectorised_run_saved_and_resumed_equals_one_never_stopped() {
        // n-step windows and episodes in progress are part of the checkpoint.
        let config = DqnConfig { n_steps: 3, learning_starts: 300, ..config(3_000) };
        let (whole_events, whole_q, _) = run_in_chunks(config.clone(), 8, &[375]);

        let dir = tempfile::TempDir::new().unwrap();
        let mut first = agent(config);
        let mut envs = cartpoles(8, false);
        let mut events = Vec::new();
        first.learn_vec(&mut envs, 101, &mut [&mut observer(|e| events.push(e.clone()))]).unwrap();
        first.save_vec(dir.path(), &envs, &[]).unwrap();
        drop((first, envs));

        let mut envs = cartpoles(8, false);
        let mut resumed = Dqn::<AutodiffCpu>::load_vec(dir.path(), &mut envs, cpu_device()).unwrap();
        resumed.learn_vec(&mut envs, 375 - 101, &mut [&mut observer(|e| events.push(e.clone()))]).unwrap();
        assert_eq!(events, whole_events);
        assert_eq!(resumed.greedy_policy().q_values(&[0.01, 0.2, -0.03, 0.1]).unwrap().to_vec(), whole_q);

        let Err(err) = Dqn::<AutodiffCpu>::load_vec(dir.path(), &mut cartpoles(4, false), cpu_device()) else {
            panic!("resumed with another number of environments")
        };
        assert!(err.to_string().contains("collecting from 8 environments, resumed with 4"), "{err}");
    }

    #[test]
    fn n_step_transitions_sum_discounted_rewards_and_stop_at_the_episode_end() {
        // Rewards 1, 2, 3, 4, 5 with γ = 0.5 and n = 3; the episode
        // terminates on the fifth step.
        let mut replay = ReplayStore::Transitions(crate::replay::ReplayBuffer::new(16, 1).unwrap());
        let mut slot =
            Slot { obs: vec![0.0], input: vec![0.0], episode_return: 0.0, length: 0, window: VecDeque::new() };
        let mut spare = Vec::new();
        for t in 1..=5 {
            let next = [t as f32];
            store(&mut replay, &mut slot, &mut spare, (0, f64::from(t), t == 5, t == 5), &next, 3, 0.5).unwrap();
            slot.obs = next.to_vec();
        }
        let ReplayStore::Transitions(buffer) = &replay else { unreachable!() };
        let mut batch = ReplayBatch::default();
        buffer.sample_into(200, &mut seeded_rng(1), &mut batch).unwrap();
        let mut seen: Vec<(f32, f32, f32, f32, u8)> = (0..batch.len())
            .map(|i| (batch.obs[i], batch.rewards[i], batch.next_obs[i], batch.terminated[i], batch.steps[i]))
            .collect();
        seen.sort_by(|a, b| a.0.total_cmp(&b.0));
        seen.dedup();
        assert_eq!(
            seen,
            vec![
                (0.0, 1.0 + 0.5 * 2.0 + 0.25 * 3.0, 3.0, 0.0, 3), // s0 → s3, bootstrapped with γ³
                (1.0, 2.0 + 0.5 * 3.0 + 0.25 * 4.0, 4.0, 0.0, 3),
                (2.0, 3.0 + 0.5 * 4.0 + 0.25 * 5.0, 5.0, 1.0, 3), // reaches the terminal state
                (3.0, 4.0 + 0.5 * 5.0, 5.0, 1.0, 2),              // the episode's end comes first
                (4.0, 5.0, 5.0, 1.0, 1),
            ]
        );
        assert!(slot.window.is_empty(), "an ended episode leaves nothing waiting");
        assert_eq!(spare.len(), 3, "the window's rows are kept for reuse, not dropped");
    }

    #[test]
    fn hindsight_replay_with_several_environments_is_refused() {
        let env = BitFlipping::new(5).unwrap();
        let config = DqnConfig { her: Some("future:4".parse().unwrap()), ..DqnConfig::bit_flipping() };
        let mut agent = Dqn::<AutodiffCpu>::for_goal_env(config, &env, cpu_device()).unwrap();
        let mut envs = VecEnv::from_fn(4, |_| BitFlipping::new(5).unwrap()).unwrap();
        let err = agent.learn_vec(&mut envs, 10, &mut []).unwrap_err();
        assert!(matches!(err, AlgoError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("hindsight"), "{err}");
        // One environment in a VecEnv is the single-environment loop, relabeling included.
        let mut one = VecEnv::from_fn(1, |_| BitFlipping::new(5).unwrap()).unwrap();
        agent.learn_vec(&mut one, 300, &mut []).unwrap();
        assert!(agent.gradient_updates() > 0);
    }
}
