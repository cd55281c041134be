//! Saving and resuming a DQN agent exactly.
//!
//! A training checkpoint is an `rlhf-model` checkpoint directory (online
//! network, metadata, the `DqnConfig` as `run_config`) with extra files:
//! `target.mpk` (target network), `optimizer.mpk` (Adam's moments),
//! `replay.bin` (the replay buffer), `state.json` (step counters, the
//! exploration/replay generator, the episodes in progress with their n-step
//! windows, and the training environments' [`Snapshot`]) and
//! `callbacks.json` (each callback's state). Restoring all of it makes a
//! resumed run continue bit for bit as if it had never stopped (same CPU
//! backend), with one environment or a [`VecEnv`] of many.

use std::path::Path;
use std::sync::Arc;

use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use rlhf_env::rng::EnvRng;
use rlhf_env::{Env, GoalEnv, GoalReward, Snapshot, VecEnv};
use rlhf_model::checkpoint::{self, CheckpointError, CheckpointInfo, Expectation};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::agent::{Dqn, Networks};
use super::collect::Collection;
use super::config::DqnConfig;
use super::store::ReplayStore;
use crate::callbacks::{self, Callback};
use crate::error::AlgoError;
use crate::replay::{HerBuffer, ReplayBuffer};

const TARGET_FILE: &str = "target.mpk";
const OPTIMIZER_FILE: &str = "optimizer.mpk";
const REPLAY_FILE: &str = "replay.bin";
const STATE_FILE: &str = "state.json";
use crate::callbacks::CALLBACKS_FILE;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainingState {
    num_timesteps: u64,
    gradient_updates: u64,
    rng: EnvRng,
    collection: Option<Collection>,
    /// The training environment's (or `VecEnv`'s) snapshot, as its own
    /// JSON (generators hold 128-bit numbers, which `serde_json::Value` cannot).
    env: Box<RawValue>,
}

impl<B: AutodiffBackend> Dqn<B> {
    /// Saves everything needed to resume training on `env` (whose state is
    /// saved too) into the checkpoint directory `dir`, atomically. Extra
    /// `(name, contents)` files of the caller are stored alongside.
    pub fn save<E>(&self, dir: &Path, env: &E, extras: &[(&str, &[u8])]) -> Result<(), AlgoError>
    where
        E: Env + Snapshot,
    {
        self.save_state(dir, env.id(), snapshot_json(env)?, &serde_json::Value::Array(Vec::new()), extras)
    }

    /// [`Dqn::save`] for training on the environments of `envs`.
    pub fn save_vec<E>(&self, dir: &Path, envs: &VecEnv<E>, extras: &[(&str, &[u8])]) -> Result<(), AlgoError>
    where
        E: Env + Snapshot,
    {
        let id = envs.envs()[0].id();
        self.save_state(dir, id, snapshot_json(envs)?, &serde_json::Value::Array(Vec::new()), extras)
    }

    /// Writes the checkpoint: the agent, `env_state`, the callbacks' states and `extras`.
    pub(super) fn save_state(
        &self,
        dir: &Path,
        env_id: &str,
        env_state: Box<RawValue>,
        callback_states: &serde_json::Value,
        extras: &[(&str, &[u8])],
    ) -> Result<(), AlgoError> {
        let serialize = |what: &str, e: &dyn std::fmt::Display| AlgoError::Serialize {
            what: format!("{} ({what})", dir.display()),
            reason: e.to_string(),
        };
        let (online, target, optimizer) = self.networks.to_burn(&self.device, self.config.freeze_layers);
        let target = checkpoint::network_to_bytes(&target, &dir.join(TARGET_FILE))?;
        let optimizer = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
            .record(optimizer, ())
            .map_err(|e| serialize(OPTIMIZER_FILE, &e))?;
        let replay = self.replay.to_bytes();
        let state = TrainingState {
            num_timesteps: self.num_timesteps,
            gradient_updates: self.gradient_updates,
            rng: self.rng.clone(),
            collection: self.collection.clone(),
            env: env_state,
        };
        let state = serde_json::to_vec_pretty(&state).map_err(|e| serialize(STATE_FILE, &e))?;
        let callback_states = serde_json::to_vec_pretty(callback_states).map_err(|e| serialize(CALLBACKS_FILE, &e))?;
        let mut files: Vec<(&str, &[u8])> = vec![
            (TARGET_FILE, &target),
            (OPTIMIZER_FILE, &optimizer),
            (REPLAY_FILE, &replay),
            (STATE_FILE, &state),
            (CALLBACKS_FILE, &callback_states),
        ];
        files.extend_from_slice(extras);
        let info = CheckpointInfo {
            env_id: env_id.to_owned(),
            step: self.num_timesteps,
            backend: self.backend_name(),
            run_config: serde_json::to_value(&self.config).map_err(|e| serialize("meta.json", &e))?,
        };
        checkpoint::save_with_extras(dir, &online, &self.network_config, info, &files)?;
        Ok(())
    }

    /// Gives each of `callbacks` the state it had when the checkpoint in
    /// `dir` was saved during training (the same callbacks, in the same order).
    pub fn restore_callbacks(dir: &Path, callbacks: &mut [&mut dyn Callback<B>]) -> Result<(), AlgoError> {
        let meta = checkpoint::read_meta(dir)?;
        let path = dir.join(CALLBACKS_FILE);
        let bad = |reason: String| AlgoError::BadState { path: path.clone(), reason };
        let saved = serde_json::from_slice(&checkpoint::read_extra(dir, &meta, CALLBACKS_FILE)?)
            .map_err(|e| bad(e.to_string()))?;
        callbacks::restore_states(callbacks, saved).map_err(bad)
    }

    /// Loads an agent saved by [`Dqn::save`] and restores `env` (built with
    /// the same configuration) to where training stopped.
    pub fn load<E>(dir: &Path, env: &mut E, device: B::Device) -> Result<Self, AlgoError>
    where
        E: Env + Snapshot,
    {
        let id = env.id().to_owned();
        Self::load_with(dir, &id, None, 1, device, |state| restore_json(env, state))
    }

    /// [`Dqn::load`] for an agent trained on the goal environment `env`.
    pub fn load_goal<E>(dir: &Path, env: &mut E, device: B::Device) -> Result<Self, AlgoError>
    where
        E: GoalEnv + Snapshot,
    {
        let (id, goal) = (env.id().to_owned(), GoalLayout::of(env));
        Self::load_with(dir, &id, Some(goal), 1, device, |state| restore_json(env, state))
    }

    /// [`Dqn::load`] for an agent trained on `envs` (of the same number).
    pub fn load_vec<E>(dir: &Path, envs: &mut VecEnv<E>, device: B::Device) -> Result<Self, AlgoError>
    where
        E: Env + Snapshot,
    {
        let id = envs.envs()[0].id().to_owned();
        let n = envs.num_envs();
        Self::load_with(dir, &id, None, n, device, |state| restore_json(envs, state))
    }

    /// [`Dqn::load_goal`] for an agent trained on `envs` (of the same number).
    pub fn load_goal_vec<E>(dir: &Path, envs: &mut VecEnv<E>, device: B::Device) -> Result<Self, AlgoError>
    where
        E: GoalEnv + Snapshot,
    {
        let (id, goal) = (envs.envs()[0].id().to_owned(), GoalLayout::of(&envs.envs()[0]));
        let n = envs.num_envs();
        Self::load_with(dir, &id, Some(goal), n, device, |state| restore_json(envs, state))
    }

    fn load_with(
        dir: &Path,
        env_id: &str,
        goal: Option<GoalLayout>,
        n_envs: usize,
        device: B::Device,
        restore_env: impl FnOnce(&RawValue) -> Result<(), String>,
    ) -> Result<Self, AlgoError> {
        let meta = checkpoint::read_meta(dir)?;
        let meta_path = dir.join("meta.json");
        let config: DqnConfig = serde_json::from_value(meta.run_config.clone())
            .map_err(|e| AlgoError::BadState { path: meta_path.clone(), reason: format!("run_config: {e}") })?;
        // The network and metadata first: a checkpoint of another environment
        // is reported as such, not as a replay of the wrong shape.
        let obs_dim = goal.as_ref().map_or(meta.obs_dim, |g| g.obs_dim + g.goal_dim);
        let expected = Expectation { env_id, obs_dim, n_actions: meta.n_actions };
        let (online, _) = checkpoint::load::<B>(dir, &expected, &device)?;
        let replay_path = dir.join(REPLAY_FILE);
        let replay_bytes = checkpoint::read_extra(dir, &meta, REPLAY_FILE)?;
        let bad_replay = |reason: String| AlgoError::BadState { path: replay_path.clone(), reason };
        let (mut agent, replay) = match goal {
            None => {
                let agent = Self::new(config, meta.obs_dim, meta.n_actions, device)?;
                let replay = ReplayBuffer::from_bytes(&replay_bytes).map_err(bad_replay)?;
                if replay.capacity() != agent.config.buffer_size || replay.obs_dim() != meta.obs_dim {
                    return Err(bad_replay(format!(
                        "holds {} transitions of {} values, the config wants {} of {}",
                        replay.capacity(),
                        replay.obs_dim(),
                        agent.config.buffer_size,
                        meta.obs_dim
                    )));
                }
                (agent, ReplayStore::Transitions(replay))
            }
            Some(GoalLayout { obs_dim, goal_dim, reward }) => {
                let agent =
                    Self::new_goal_conditioned(config, obs_dim, goal_dim, meta.n_actions, Arc::clone(&reward), device)?;
                let replay = HerBuffer::from_bytes(&replay_bytes, agent.config.her, reward)
                    .map_err(bad_replay)?
                    .with_n_steps(agent.config.n_steps, agent.config.gamma)?;
                let found = (replay.capacity(), replay.obs_dim(), replay.goal_dim());
                if found != (agent.config.buffer_size, obs_dim, goal_dim) {
                    return Err(bad_replay(format!(
                        "holds (capacity, obs_dim, goal_dim) {found:?}, the config and env want {:?}",
                        (agent.config.buffer_size, obs_dim, goal_dim)
                    )));
                }
                (agent, ReplayStore::Hindsight(replay))
            }
        };
        let target_bytes = checkpoint::read_extra(dir, &meta, TARGET_FILE)?;
        let target: rlhf_model::QNetwork<B::InnerBackend> =
            checkpoint::network_from_bytes(target_bytes, &agent.network_config, &agent.device, &dir.join(TARGET_FILE))?;
        let optimizer_bytes = checkpoint::read_extra(dir, &meta, OPTIMIZER_FILE)?;
        let optimizer_record = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
            .load(optimizer_bytes, &agent.device)
            .map_err(|e| CheckpointError::Corrupt { path: dir.join(OPTIMIZER_FILE), reason: e.to_string() })?;
        let state_path = dir.join(STATE_FILE);
        let bad_state = |reason: String| AlgoError::BadState { path: state_path.clone(), reason };
        let state: TrainingState = serde_json::from_slice(&checkpoint::read_extra(dir, &meta, STATE_FILE)?)
            .map_err(|e| bad_state(e.to_string()))?;
        if let Some(collection) = &state.collection
            && collection.num_envs() != n_envs
        {
            return Err(bad_state(format!(
                "training was collecting from {} environments, resumed with {n_envs}",
                collection.num_envs()
            )));
        }
        restore_env(&state.env).map_err(|e| bad_state(format!("env: {e}")))?;

        let online = online.freeze_hidden(agent.config.freeze_layers);
        agent.networks = Networks::new(&agent.config, online, target, Some(optimizer_record))?;
        agent.acting = agent.networks.acting()?;
        agent.replay = replay;
        agent.num_timesteps = state.num_timesteps;
        agent.gradient_updates = state.gradient_updates;
        agent.rng = state.rng;
        agent.collection = state.collection;
        Ok(agent)
    }
}

/// An environment's snapshot as JSON.
pub(super) fn snapshot_json<S: Snapshot>(env: &S) -> Result<Box<RawValue>, AlgoError> {
    serde_json::value::to_raw_value(&env.snapshot())
        .map_err(|e| AlgoError::Serialize { what: "the environment's snapshot".into(), reason: e.to_string() })
}

/// Restores `env` from the JSON of its snapshot.
fn restore_json<S: Snapshot>(env: &mut S, state: &RawValue) -> Result<(), String> {
    env.restore(serde_json::from_str(state.get()).map_err(|e| e.to_string())?);
    Ok(())
}

/// The shape of a goal environment's observations and its reward function.
struct GoalLayout {
    obs_dim: usize,
    goal_dim: usize,
    reward: Arc<dyn GoalReward>,
}

impl GoalLayout {
    fn of<E: GoalEnv>(env: &E) -> Self {
        Self { obs_dim: env.observation_dim(), goal_dim: env.goal_dim(), reward: Arc::new(env.goal_reward().clone()) }
    }
}
