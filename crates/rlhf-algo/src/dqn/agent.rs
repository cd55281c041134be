//! The DQN agent: online and target networks, Adam, replay, the gradient
//! step (Huber or MSE on the TD error, double Q, clipped targets) and the
//! target update (hard copy or Polyak averaging). Collection lives in
//! `collect.rs`, saving and resuming in `persistence.rs`.

use std::sync::Arc;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::loss::{HuberLossConfig, MseLoss, Reduction};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use rlhf_env::rng::{EnvRng, seeded_rng};
use rlhf_env::{BoxSpace, Discrete, Env, EpisodeOutcome, GoalEnv, GoalReward};
use rlhf_model::backend::is_cpu_backend;
use rlhf_model::checkpoint::{self, CheckpointInfo};
use rlhf_model::{AdamRecord, HostAdam, HostMlp, HostQNetwork, QNetwork, QNetworkConfig};

use super::collect::Collection;
use super::config::{DqnConfig, LossKind, UpdatePath};
use super::host::{HostUpdate, adam_config};
use super::store::{FlatObs, ReplayStore, write_row};
use super::td::td_targets;
use crate::callbacks::TrainEvent;
use crate::error::AlgoError;
use crate::evaluation::{EvalReport, evaluate};
use crate::policy::GreedyPolicy;
use crate::replay::{HerBuffer, ReplayBatch, ReplayBuffer};

/// The online and target networks and the optimizer, where the gradient steps run.
// One per agent, moved only when built: boxing a variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Networks<B: AutodiffBackend> {
    /// burn's autodiff and optimizer on the agent's backend: the reference, and the GPU path.
    Burn { online: QNetwork<B>, target: QNetwork<B::InnerBackend>, optimizer: OptimizerAdaptor<Adam, QNetwork<B>, B> },
    /// Host loops: the fast path for plain MLPs on a CPU backend.
    Host(HostUpdate),
}

/// burn's Adam with the settings the host path uses too ([`adam_config`]: one source for both).
fn burn_optimizer<B: AutodiffBackend>(config: &DqnConfig) -> OptimizerAdaptor<Adam, QNetwork<B>, B> {
    let adam = adam_config(config);
    AdamConfig::new()
        .with_beta_1(adam.beta_1)
        .with_beta_2(adam.beta_2)
        .with_epsilon(adam.epsilon)
        .with_grad_clipping(adam.clip_norm.map(GradientClippingConfig::Norm))
        .init()
}

impl<B: AutodiffBackend> Networks<B> {
    /// `online` and its `target`, with the optimizer's state in `record`
    /// (burn's, keyed by `online`'s parameter ids), on the path `config` asks for.
    pub(super) fn new(
        config: &DqnConfig,
        online: QNetwork<B>,
        target: QNetwork<B::InnerBackend>,
        record: Option<AdamRecord<B>>,
    ) -> Result<Self, AlgoError> {
        let host = match config.update {
            UpdatePath::Burn => false,
            UpdatePath::Host => true,
            UpdatePath::Auto => !config.dueling && is_cpu_backend::<B::InnerBackend>(),
        };
        if !host {
            let optimizer = burn_optimizer(config);
            let optimizer = match record {
                Some(record) => optimizer.load_record(record),
                None => optimizer,
            };
            return Ok(Self::Burn { online, target, optimizer });
        }
        let adam = match record {
            Some(record) => HostAdam::from_record(adam_config(config), record, &online)?,
            None => HostAdam::new(adam_config(config)),
        };
        let update = HostUpdate::new(
            HostMlp::from_network(&online)?,
            HostMlp::from_network(&target)?,
            adam,
            config.freeze_layers,
        );
        Ok(Self::Host(update))
    }

    /// The online network in burn, its first `frozen` hidden layers frozen.
    pub(super) fn online(&self, device: &B::Device, frozen: usize) -> QNetwork<B> {
        match self {
            Self::Burn { online, .. } => online.clone(),
            Self::Host(host) => host.online.to_network::<B>(device).freeze_hidden(frozen),
        }
    }

    /// A host copy of the online network, for acting.
    pub(super) fn acting(&self) -> Result<HostQNetwork, AlgoError> {
        match self {
            Self::Burn { online, .. } => Ok(online.to_host()?),
            Self::Host(host) => Ok(host.acting()),
        }
    }

    /// Online network, target network and optimizer record as burn holds
    /// them (what a checkpoint stores), whichever path trained them.
    pub(super) fn to_burn(
        &self,
        device: &B::Device,
        frozen: usize,
    ) -> (QNetwork<B>, QNetwork<B::InnerBackend>, AdamRecord<B>) {
        match self {
            Self::Burn { online, target, optimizer } => (online.clone(), target.clone(), optimizer.to_record()),
            Self::Host(host) => {
                let online = self.online(device, frozen);
                let record = host.adam.to_record(&online);
                (online, host.target.to_network(device), record)
            }
        }
    }
}

/// A DQN agent: online and target Q-networks, Adam, replay and exploration.
///
/// The training loop ([`Dqn::learn`], [`Dqn::learn_vec`]) reads as
/// CleanRL's: act ε-greedily, store the transition, every `train_freq`
/// steps take `gradient_steps` gradient steps on sampled batches, every
/// `target_update_interval` steps move the target network towards the
/// online one; callbacks ([`crate::callbacks`]) evaluate, save and stop. Acting uses a host copy
/// of the online weights ([`HostQNetwork`]), refreshed after every burst of
/// gradient steps, so the action is the one `forward` would pick.
///
/// On a goal environment ([`Dqn::for_goal_env`]) the network reads
/// `[observation, desired_goal]` and replay is a [`HerBuffer`], which
/// relabels goals in hindsight when `config.her` is set; the update itself
/// is the same.
///
/// ```
/// use rlhf_algo::dqn::{Dqn, DqnConfig};
/// use rlhf_env::CartPole;
/// use rlhf_model::backend::{AutodiffCpu, cpu_device};
///
/// let config = DqnConfig { learning_starts: 100, train_freq: 4, gradient_steps: 1, ..DqnConfig::default() };
/// let mut env = CartPole::v1();
/// let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device())?;
/// agent.learn(&mut env, 500, &mut [])?;
/// // Save everything, resume from the files alone, and go on exactly where it stopped.
/// let dir = tempfile::TempDir::new().map_err(|e| rlhf_algo::AlgoError::Io { path: "tmp".into(), source: e })?;
/// agent.save(dir.path(), &env, &[])?;
/// let mut env = CartPole::v1();
/// let mut resumed = Dqn::<AutodiffCpu>::load(dir.path(), &mut env, cpu_device())?;
/// assert_eq!(resumed.num_timesteps(), 500);
/// resumed.learn(&mut env, 500, &mut [])?;
/// let report = resumed.evaluate(&mut CartPole::v1(), 5, 0)?;
/// assert_eq!(report.returns.len(), 5);
/// # Ok::<(), rlhf_algo::AlgoError>(())
/// ```
pub struct Dqn<B: AutodiffBackend> {
    pub(super) config: DqnConfig,
    pub(super) device: B::Device,
    pub(super) networks: Networks<B>,
    pub(super) network_config: QNetworkConfig,
    pub(super) acting: HostQNetwork,
    pub(super) replay: ReplayStore,
    pub(super) batch: ReplayBatch,
    pub(super) rng: EnvRng,
    /// Values of the network's input.
    pub(super) obs_dim: usize,
    pub(super) n_actions: usize,
    pub(super) num_timesteps: u64,
    pub(super) gradient_updates: u64,
    /// The episodes in progress between calls to `learn`.
    pub(super) collection: Option<Collection>,
    /// Reused rows: the network input and an observation.
    pub(super) input: Vec<f32>,
    row: Vec<f32>,
}

impl<B: AutodiffBackend> Dqn<B> {
    /// An untrained agent for flat observations of `obs_dim` floats and `n_actions` actions.
    pub fn new(config: DqnConfig, obs_dim: usize, n_actions: usize, device: B::Device) -> Result<Self, AlgoError> {
        if config.her.is_some() {
            return Err(AlgoError::Unsupported {
                what: "hindsight replay (`her`) on this environment".into(),
                reason: "it needs a goal environment (bitflip, fourrooms)".into(),
            });
        }
        let replay = ReplayStore::Transitions(ReplayBuffer::new(config.buffer_size, obs_dim)?);
        Self::with_replay(config, obs_dim, n_actions, replay, device)
    }

    /// An untrained agent for a goal environment with observations of
    /// `obs_dim` and goals of `goal_dim` values; `reward` relabels.
    pub fn new_goal_conditioned(
        config: DqnConfig,
        obs_dim: usize,
        goal_dim: usize,
        n_actions: usize,
        reward: Arc<dyn GoalReward>,
        device: B::Device,
    ) -> Result<Self, AlgoError> {
        let buffer = HerBuffer::new(config.buffer_size, obs_dim, goal_dim, config.her, reward)?
            .with_n_steps(config.n_steps, config.gamma)?;
        Self::with_replay(config, obs_dim + goal_dim, n_actions, ReplayStore::Hindsight(buffer), device)
    }

    fn with_replay(
        config: DqnConfig,
        obs_dim: usize,
        n_actions: usize,
        replay: ReplayStore,
        device: B::Device,
    ) -> Result<Self, AlgoError> {
        config.validate()?;
        if obs_dim == 0 || n_actions == 0 {
            return Err(AlgoError::InvalidConfig {
                field: "env",
                reason: format!("needs observations and actions, got obs_dim {obs_dim}, n_actions {n_actions}"),
            });
        }
        let net_config = QNetworkConfig::new(obs_dim, n_actions)
            .with_hidden(config.net_arch.clone())
            .with_activation(config.activation)
            .with_dueling(config.dueling);
        let online: QNetwork<B> = net_config.init::<B>(&device, config.seed).freeze_hidden(config.freeze_layers);
        let target = online.valid();
        let networks = Networks::new(&config, online, target, None)?;
        let acting = networks.acting()?;
        // The exploration/replay stream is decorrelated from the init stream.
        let rng = seeded_rng(config.seed ^ 0x9E37_79B9_7F4A_7C15);
        Ok(Self {
            config,
            device,
            networks,
            network_config: net_config,
            acting,
            replay,
            batch: ReplayBatch::default(),
            rng,
            obs_dim,
            n_actions,
            num_timesteps: 0,
            gradient_updates: 0,
            collection: None,
            input: Vec::new(),
            row: Vec::new(),
        })
    }

    /// An agent sized for `env`'s flat box observations and discrete actions.
    pub fn for_env<E>(config: DqnConfig, env: &E, device: B::Device) -> Result<Self, AlgoError>
    where
        E: Env<ObsSpace = BoxSpace, ActionSpace = Discrete>,
    {
        Self::new(config, env.observation_space().flat_dim(), env.action_space().n(), device)
    }

    /// An agent for the goal environment `env`, relabeling as `config.her` says.
    pub fn for_goal_env<E>(config: DqnConfig, env: &E, device: B::Device) -> Result<Self, AlgoError>
    where
        E: GoalEnv<ActionSpace = Discrete>,
    {
        let reward = Arc::new(env.goal_reward().clone());
        Self::new_goal_conditioned(
            config,
            env.observation_dim(),
            env.goal_dim(),
            env.action_space().n(),
            reward,
            device,
        )
    }

    /// The hyperparameters.
    pub fn config(&self) -> &DqnConfig {
        &self.config
    }

    /// The backend's name, for checkpoint metadata.
    pub fn backend_name(&self) -> String {
        B::name(&self.device)
    }

    /// The online network (a copy when the host path trains it).
    pub fn online(&self) -> QNetwork<B> {
        self.networks.online(&self.device, self.config.freeze_layers)
    }

    /// Starts from a pretrained network (fine-tuning): it becomes the online
    /// and target network, with the config's `freeze_layers` applied; the
    /// optimizer, replay and counters stay fresh. Errors when the shapes differ.
    pub fn init_from(&mut self, network: QNetwork<B>) -> Result<(), AlgoError> {
        let fresh = self.network_config.init::<B>(&self.device, 0);
        if network.param_shapes() != fresh.param_shapes() {
            return Err(AlgoError::ShapeMismatch {
                what: "the pretrained network's parameters".into(),
                expected: format!("{:?} (this config's net_arch)", fresh.param_shapes()),
                found: format!("{:?}", network.param_shapes()),
            });
        }
        let online = network.freeze_hidden(self.config.freeze_layers);
        let target = online.valid();
        self.networks = Networks::new(&self.config, online, target, None)?;
        self.acting = self.networks.acting()?;
        Ok(())
    }

    /// The shape of the online (and target) network.
    pub fn network_config(&self) -> &QNetworkConfig {
        &self.network_config
    }

    /// Environment steps taken by [`Dqn::learn`] so far.
    pub fn num_timesteps(&self) -> u64 {
        self.num_timesteps
    }

    /// Gradient steps taken so far.
    pub fn gradient_updates(&self) -> u64 {
        self.gradient_updates
    }

    /// The greedy action of the current online network on an observation.
    pub fn greedy_action(&mut self, obs: &impl FlatObs) -> Result<usize, AlgoError> {
        write_row(obs, &mut self.row, self.replay.row_dim())?;
        self.input.clear();
        obs.write_network_input(&mut self.input);
        Ok(self.acting.greedy_action(&self.input)?)
    }

    /// Saves the online network (for acting, evaluating or fine-tuning, not
    /// for resuming) as a checkpoint directory tagged with `env_id`.
    pub fn save_network(&self, dir: &std::path::Path, env_id: &str) -> Result<(), AlgoError> {
        let run_config = serde_json::to_value(&self.config)
            .map_err(|e| AlgoError::Serialize { what: "the DqnConfig".into(), reason: e.to_string() })?;
        let info = CheckpointInfo {
            env_id: env_id.to_owned(),
            step: self.num_timesteps,
            backend: self.backend_name(),
            run_config,
        };
        checkpoint::save(dir, &self.online(), &self.network_config, info)?;
        Ok(())
    }

    /// The greedy policy of the current online network, for evaluation.
    pub fn greedy_policy(&self) -> GreedyPolicy {
        GreedyPolicy::new(self.acting.clone())
    }

    /// Plays `episodes` greedy episodes on `env` (first reset seeded with
    /// `seed`); an observation of the wrong size is an error.
    pub fn evaluate<E>(&self, env: &mut E, episodes: usize, seed: u64) -> Result<EvalReport, AlgoError>
    where
        E: Env<Action = usize>,
        E::Obs: FlatObs,
        E::Info: EpisodeOutcome,
    {
        let mut policy = self.greedy_policy();
        // The first observation is checked against the replay's row, so an
        // environment of another size fails even if its network input fits.
        let (first, _) = env.reset(Some(seed));
        let mut row = Vec::new();
        write_row(&first, &mut row, self.replay.row_dim())?;
        let report = evaluate(env, &mut policy, episodes, seed)?;
        match policy.take_error() {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// One gradient step on a batch sampled from the replay buffer; returns
    /// (loss, mean Q(s, a)). [`Dqn::learn`] calls it on its schedule; it is
    /// public for benchmarks and custom loops. Errors when the buffer is empty.
    pub fn gradient_step(&mut self) -> Result<(f64, f64), AlgoError> {
        self.replay.sample_into(self.config.batch_size, &mut self.rng, &mut self.batch)?;
        let step = match &mut self.networks {
            Networks::Burn { online, target, optimizer } => {
                burn_gradient_step(online, target, optimizer, &self.batch, &self.config, &self.device, self.obs_dim)?
            }
            Networks::Host(host) => host.gradient_step(&self.batch, &self.config)?,
        };
        self.gradient_updates += 1;
        Ok(step)
    }

    /// `steps` gradient steps, reported as one event.
    pub(super) fn train_burst(&mut self, steps: u64) -> Result<TrainEvent, AlgoError> {
        let (mut loss_sum, mut q_sum) = (0.0, 0.0);
        for _ in 0..steps {
            let (loss, mean_q) = self.gradient_step()?;
            loss_sum += loss;
            q_sum += mean_q;
        }
        let n = steps.max(1) as f64;
        Ok(TrainEvent::Train {
            step: self.num_timesteps,
            gradient_updates: self.gradient_updates,
            loss: loss_sum / n,
            mean_q: q_sum / n,
        })
    }

    /// Hard copy (`tau = 1`) or Polyak averaging of the target network.
    pub(super) fn update_target(&mut self) -> Result<(), AlgoError> {
        let tau = self.config.tau;
        let (online, target) = match &mut self.networks {
            Networks::Host(host) => return host.update_target(tau),
            Networks::Burn { online, target, .. } => (online.valid(), target),
        };
        if tau >= 1.0 {
            *target = online;
            return Ok(());
        }
        let mut collect = CollectParams::<B::InnerBackend> { tensors: Vec::new() };
        online.visit(&mut collect);
        let mut blend = BlendParams { source: collect.tensors.into_iter(), tau };
        *target = target.clone().map(&mut blend);
        Ok(())
    }
}

/// One gradient step of burn's path on `batch`; returns (loss, mean Q(s, a)).
fn burn_gradient_step<B: AutodiffBackend>(
    online: &mut QNetwork<B>,
    target: &QNetwork<B::InnerBackend>,
    optimizer: &mut OptimizerAdaptor<Adam, QNetwork<B>, B>,
    batch: &ReplayBatch,
    config: &DqnConfig,
    device: &B::Device,
    obs_dim: usize,
) -> Result<(f64, f64), AlgoError> {
    let batch_size = batch.len();
    let floats2 = |v: &[f32]| TensorData::new(v.to_vec(), [batch_size, obs_dim]);
    let floats1 = |v: &[f32]| TensorData::new(v.to_vec(), [batch_size]);

    // Targets, without gradients, on the inner backend.
    let next_obs = Tensor::<B::InnerBackend, 2>::from_data(floats2(&batch.next_obs), device);
    let next_q_target = target.forward(next_obs.clone());
    let next_q_online = config.double_q.then(|| online.valid().forward(next_obs));
    // γ^k for a transition over k steps (k = 1 without n-step returns).
    let gamma = config.gamma;
    let discounts: Vec<f32> = batch.steps.iter().map(|&k| gamma.powi(i32::from(k)) as f32).collect();
    let targets = td_targets(
        Tensor::from_data(floats1(&batch.rewards), device),
        Tensor::from_data(floats1(&batch.terminated), device),
        Tensor::from_data(floats1(&discounts), device),
        next_q_target,
        next_q_online,
    );
    let targets = match config.target_bounds {
        Some([low, high]) => targets.clamp(low, high),
        None => targets,
    };
    let targets = Tensor::<B, 1>::from_inner(targets);

    // Q(s, a) with gradients.
    let obs = Tensor::<B, 2>::from_data(floats2(&batch.obs), device);
    let actions = Tensor::<B, 2, Int>::from_data(TensorData::new(batch.actions.clone(), [batch_size, 1]), device);
    let q_taken: Tensor<B, 1> = online.forward(obs).gather(1, actions).squeeze_dim(1);
    let mean_q = f64::from(q_taken.clone().mean().into_scalar().elem::<f32>());
    let loss = match config.loss {
        LossKind::Huber => HuberLossConfig::new(1.0).init().forward(q_taken, targets, Reduction::Mean),
        LossKind::Mse => MseLoss::new().forward(q_taken, targets, Reduction::Mean),
    };
    let loss_value = f64::from(loss.clone().into_scalar().elem::<f32>());
    let grads = GradientsParams::from_grads(loss.backward(), &*online);
    *online = optimizer.step(config.learning_rate, online.clone(), grads);
    Ok((loss_value, mean_q))
}

/// Gathers every float parameter, flattened, in visiting order.
struct CollectParams<B: Backend> {
    tensors: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for CollectParams<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.tensors.push(value.reshape([n]));
    }
}

/// Moves each float parameter towards the collected one: `(1 - τ)·θ' + τ·θ`.
struct BlendParams<B: Backend> {
    source: std::vec::IntoIter<Tensor<B, 1>>,
    tau: f64,
}

impl<B: Backend> ModuleMapper<B> for BlendParams<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(source) = self.source.next() else { return param };
        let tau = self.tau;
        param.map(|target| {
            let shape = target.shape();
            target * (1.0 - tau) + source.reshape(shape) * tau
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlhf_env::CartPole;
    use rlhf_model::backend::{AutodiffCpu, cpu_device};

    type Inner = <AutodiffCpu as AutodiffBackend>::InnerBackend;

    fn target_network(agent: &Dqn<AutodiffCpu>) -> QNetwork<Inner> {
        agent.networks.to_burn(&agent.device, agent.config.freeze_layers).1
    }

    fn q_target(agent: &Dqn<AutodiffCpu>, obs: &[f32; 4]) -> Vec<f32> {
        target_network(agent).to_host().unwrap().q_values(obs).unwrap().to_vec()
    }

    const BOTH_PATHS: [UpdatePath; 2] = [UpdatePath::Burn, UpdatePath::Host];

    fn agent_after_updates(tau: f64, update: UpdatePath) -> (Dqn<AutodiffCpu>, Vec<f32>) {
        let config = DqnConfig {
            tau,
            update,
            learning_starts: u64::MAX,
            target_update_interval: u64::MAX,
            ..DqnConfig::default()
        };
        let mut env = CartPole::v1();
        let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device()).unwrap();
        agent.learn(&mut env, 300, &mut []).unwrap();
        let obs = [0.1, 0.2, -0.1, 0.3];
        let before = q_target(&agent, &obs);
        for _ in 0..20 {
            agent.gradient_step().unwrap();
        }
        (agent, before)
    }

    #[test]
    fn an_observation_of_the_wrong_size_is_an_error_not_a_panic() {
        let env = rlhf_env::BitFlipping::new(4).unwrap();
        let mut agent = Dqn::<AutodiffCpu>::for_goal_env(DqnConfig::bit_flipping(), &env, cpu_device()).unwrap();
        let short =
            rlhf_env::GoalObs { observation: vec![0.0; 2], achieved_goal: vec![0.0; 4], desired_goal: vec![1.0] };
        assert!(matches!(agent.greedy_action(&short), Err(AlgoError::ShapeMismatch { .. })));
        let err = agent.evaluate(&mut rlhf_env::BitFlipping::new(5).unwrap(), 2, 0).unwrap_err();
        assert!(err.to_string().contains("expected 12 values, found 15"), "{err}");
        // A policy of the right network input size still checks the whole observation.
        let mut policy = agent.greedy_policy();
        assert!(policy.try_act(&short).is_err());
    }

    #[test]
    fn clipped_targets_pull_q_into_the_bounds() {
        // CartPole's rewards are +1, so unclipped targets are at least 1;
        // clipping every target to -1 must drive Q(s, a) to -1 instead.
        let config = DqnConfig {
            target_bounds: Some([-1.0, -1.0]),
            learning_starts: u64::MAX,
            learning_rate: 1e-2,
            ..DqnConfig::default()
        };
        let mut env = CartPole::v1();
        let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device()).unwrap();
        agent.learn(&mut env, 300, &mut []).unwrap();
        let mut mean_q = 0.0;
        for _ in 0..300 {
            mean_q = agent.gradient_step().unwrap().1;
        }
        assert!((mean_q + 1.0).abs() < 0.05, "mean Q(s, a) {mean_q}");
    }

    #[test]
    fn hard_update_copies_the_online_network() {
        for update in BOTH_PATHS {
            let (mut agent, before) = agent_after_updates(1.0, update);
            let obs = [0.1, 0.2, -0.1, 0.3];
            assert_eq!(q_target(&agent, &obs), before, "the target waits for its update");
            agent.update_target().unwrap();
            assert_eq!(q_target(&agent, &obs), agent.online().to_host().unwrap().q_values(&obs).unwrap().to_vec());
        }
    }

    fn weights(net: &QNetwork<Inner>) -> Vec<f32> {
        let mut collect = CollectParams { tensors: Vec::new() };
        net.visit(&mut collect);
        collect.tensors.into_iter().flat_map(|t| t.into_data().to_vec::<f32>().unwrap()).collect()
    }

    #[test]
    fn polyak_update_moves_each_weight_a_fraction_tau() {
        for update in BOTH_PATHS {
            let (mut agent, _) = agent_after_updates(0.25, update);
            let old_target = weights(&target_network(&agent));
            let online = weights(&agent.online().valid());
            agent.update_target().unwrap();
            let new_target = weights(&target_network(&agent));
            assert_ne!(old_target, online);
            for ((new, old), theta) in new_target.iter().zip(&old_target).zip(&online) {
                let expected = 0.75 * old + 0.25 * theta;
                assert!((new - expected).abs() <= 1e-6 * (1.0 + expected.abs()), "{new} vs {expected}");
            }
        }
    }

    #[test]
    fn auto_picks_the_host_path_on_the_cpu_and_burn_for_a_dueling_head() {
        let env = CartPole::v1();
        let agent = Dqn::<AutodiffCpu>::for_env(DqnConfig::default(), &env, cpu_device()).unwrap();
        assert!(matches!(agent.networks, Networks::Host(_)));
        let dueling = DqnConfig { dueling: true, ..DqnConfig::default() };
        let agent = Dqn::<AutodiffCpu>::for_env(dueling.clone(), &env, cpu_device()).unwrap();
        assert!(matches!(agent.networks, Networks::Burn { .. }));
        let err = Dqn::<AutodiffCpu>::for_env(DqnConfig { update: UpdatePath::Host, ..dueling }, &env, cpu_device())
            .err()
            .unwrap();
        assert!(err.to_string().contains("`update`"), "{err}");
    }

    /// The host path's steps against burn's on the same batches: loss, mean
    /// Q and every weight agree to float rounding, for each variant of the update.
    #[test]
    fn the_host_path_computes_burns_update() {
        let variants = [
            DqnConfig::default(),
            DqnConfig { double_q: true, loss: LossKind::Mse, n_steps: 3, ..DqnConfig::default() },
            DqnConfig {
                target_bounds: Some([0.0, 5.0]),
                activation: rlhf_model::Activation::Tanh,
                ..DqnConfig::default()
            },
            DqnConfig { freeze_layers: 1, max_grad_norm: 0.1, ..DqnConfig::default() },
        ];
        for base in variants {
            let run = |update: UpdatePath| {
                let config =
                    DqnConfig { update, learning_starts: u64::MAX, target_update_interval: u64::MAX, ..base.clone() };
                let mut env = CartPole::v1();
                let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device()).unwrap();
                agent.learn(&mut env, 500, &mut []).unwrap();
                let steps: Vec<(f64, f64)> = (0..25).map(|_| agent.gradient_step().unwrap()).collect();
                agent.update_target().unwrap();
                let steps_after: Vec<(f64, f64)> = (0..5).map(|_| agent.gradient_step().unwrap()).collect();
                (steps, steps_after, weights(&agent.online().valid()))
            };
            let (burn, host) = (run(UpdatePath::Burn), run(UpdatePath::Host));
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
            for (i, ((lb, qb), (lh, qh))) in burn.0.iter().chain(&burn.1).zip(host.0.iter().chain(&host.1)).enumerate()
            {
                assert!(close(*lh, *lb) && close(*qh, *qb), "{base:?}: step {i}: host ({lh}, {qh}), burn ({lb}, {qb})");
            }
            for (h, b) in host.2.iter().zip(&burn.2) {
                assert!((h - b).abs() <= 1e-4 * (1.0 + b.abs()), "{base:?}: weight {h} against {b}");
            }
        }
    }
}
