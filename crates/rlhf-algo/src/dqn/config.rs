//! DQN's hyperparameters ([`DqnConfig`], Stable-Baselines3's names), their
//! validation, and the presets for CartPole and bit flipping.

use rlhf_model::Activation;
use serde::{Deserialize, Serialize};

use crate::error::AlgoError;
use crate::replay::{GoalStrategy, HerConfig};
use crate::schedule::LinearSchedule;

/// The regression loss on the TD error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Smooth L1 with δ = 1 (Stable-Baselines3's DQN).
    #[default]
    Huber,
    /// Squared error (CleanRL's DQN).
    Mse,
}

/// Where DQN's gradient steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdatePath {
    /// Host loops on a CPU backend for a plain MLP (the fastest measured
    /// there), burn otherwise (a GPU backend, a dueling head).
    #[default]
    Auto,
    /// burn's autodiff and optimizer on the agent's backend: the reference.
    Burn,
    /// Host loops ([`rlhf_model::HostMlp`], [`rlhf_model::HostAdam`]) on
    /// any backend; a dueling head is an error.
    Host,
}

/// Hyperparameters of [`super::Dqn`], named as in Stable-Baselines3 so
/// configurations carry over.
///
/// The defaults solve CartPole-v1: they are rl-zoo's tuned CartPole values
/// except a smaller network (`net_arch` 64×64 instead of 256×256), shorter
/// training bursts (`train_freq` 128, `gradient_steps` 32 instead of 256 and
/// 128) and a shorter exploration decay (`exploration_fraction` 0.1 instead
/// of 0.16): a quarter of the gradient steps, each about five times cheaper,
/// which solved 10 of 10 seeds in at most 32,500 steps
/// (`cargo xtask bench cartpole --seeds 10`, numbers in docs/BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    /// Seed of the network initialisation, exploration and replay sampling.
    pub seed: u64,
    /// Planned environment steps: the exploration schedule spans this.
    pub total_timesteps: u64,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Replay capacity in transitions.
    pub buffer_size: usize,
    /// Environment steps of random actions before learning starts.
    pub learning_starts: u64,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Polyak coefficient of the target update (1.0 = hard copy).
    pub tau: f64,
    /// Discount factor.
    pub gamma: f64,
    /// Steps of reward summed before bootstrapping (n-step returns; 1 is
    /// plain DQN). The sum stops at a termination and bootstraps at a
    /// truncation; with hindsight replay it is computed under the relabeled goal.
    pub n_steps: usize,
    /// Environment steps between bursts of gradient steps (with several
    /// environments too: unlike Stable-Baselines3, not vector steps).
    pub train_freq: u64,
    /// Gradient steps per burst.
    pub gradient_steps: u64,
    /// Environment steps between target-network updates.
    pub target_update_interval: u64,
    /// Fraction of training over which epsilon decays.
    pub exploration_fraction: f64,
    /// Epsilon at the start.
    pub exploration_initial_eps: f64,
    /// Epsilon after the decay.
    pub exploration_final_eps: f64,
    /// Gradient clipping threshold, applied to each parameter tensor's L2
    /// norm (burn clips per tensor; PyTorch's `clip_grad_norm_` clips the
    /// global norm).
    pub max_grad_norm: f64,
    /// Hidden layer widths of the Q-network.
    pub net_arch: Vec<usize>,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Dueling head.
    pub dueling: bool,
    /// Double Q-learning: the online network picks the next action, the target network values it.
    pub double_q: bool,
    /// TD loss.
    pub loss: LossKind,
    /// Hidden layers, counted from the input, kept fixed during training
    /// (for fine-tuning a pretrained network).
    pub freeze_layers: usize,
    /// Clip the TD targets to `[low, high]`, the range returns can take (the
    /// hindsight paper clips to `[−1/(1−γ), 0]` for its −1/0 rewards). It
    /// stops the max over many actions from driving Q above any possible
    /// return; none by default.
    pub target_bounds: Option<[f64; 2]>,
    /// Hindsight relabeling on goal environments (`[her]` with `strategy`
    /// and `n_sampled_goal`); none by default.
    pub her: Option<HerConfig>,
    /// Where the gradient steps run: `auto` (the default), `burn` or `host`.
    /// The two paths compute the same update to float rounding; each repeats
    /// itself bit for bit, and checkpoints are the same files.
    pub update: UpdatePath,
    /// Environments stepped together (Stable-Baselines3's `n_envs`): above
    /// 1, collection is [`Dqn::learn_vec`](crate::dqn::Dqn::learn_vec)'s,
    /// actions for all of them from one batched forward pass. Plain replay only.
    pub n_envs: usize,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            total_timesteps: 50_000,
            learning_rate: 2.3e-3,
            buffer_size: 100_000,
            learning_starts: 1_000,
            batch_size: 64,
            tau: 1.0,
            gamma: 0.99,
            n_steps: 1,
            train_freq: 128,
            gradient_steps: 32,
            target_update_interval: 10,
            exploration_fraction: 0.1,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.04,
            max_grad_norm: 10.0,
            net_arch: vec![64, 64],
            activation: Activation::Relu,
            dueling: false,
            double_q: false,
            loss: LossKind::Huber,
            freeze_layers: 0,
            target_bounds: None,
            her: None,
            update: UpdatePath::Auto,
            n_envs: 1,
        }
    }
}

/// Bit counts from which [`DqnConfig::bit_flipping_for`] updates less often.
pub const BIT_FLIPPING_LARGE_N: usize = 40;

impl DqnConfig {
    /// Tuned for goal tasks with hindsight replay (`future`, k = 4): one
    /// gradient step per environment step on batches of 128, one 256-unit
    /// hidden layer as in the hindsight paper, γ = 0.98, a target copied
    /// every 100 steps, and little exploration (relabeled goals, not random
    /// actions, supply the successes). Batches of 256 learned as fast per
    /// step at 2.6 times the cost per update.
    pub fn bit_flipping() -> Self {
        Self {
            total_timesteps: 50_000,
            learning_rate: 1e-3,
            buffer_size: 1_000_000,
            learning_starts: 200,
            batch_size: 128,
            gamma: 0.98,
            train_freq: 1,
            gradient_steps: 1,
            target_update_interval: 100,
            exploration_fraction: 0.1,
            exploration_final_eps: 0.02,
            net_arch: vec![256],
            // Rewards are −1 or 0, so returns lie in [−1/(1−γ), 0].
            target_bounds: Some([-50.0, 0.0]),
            her: Some(HerConfig { strategy: GoalStrategy::Future, n_sampled_goal: 4 }),
            ..Self::default()
        }
    }

    /// [`bit_flipping`](Self::bit_flipping) for `n_bits` bits: from
    /// [`BIT_FLIPPING_LARGE_N`] bits on, one gradient step per 16
    /// environment steps (the hindsight paper's ratio is about one per 20),
    /// 2,000 steps before learning, and more exploration (ε 0.1 after the
    /// first 5%). At 40 and 50 bits one update per step learns the relabeled
    /// near goals and never the far ones (0.00 success after 60,000 steps);
    /// this recipe solved 50 bits in 2M steps (docs/BENCHMARKS.md).
    pub fn bit_flipping_for(n_bits: usize) -> Self {
        let base = Self::bit_flipping();
        if n_bits < BIT_FLIPPING_LARGE_N {
            return base;
        }
        Self { train_freq: 16, learning_starts: 2_000, exploration_fraction: 0.05, exploration_final_eps: 0.1, ..base }
    }

    /// The epsilon schedule these fields describe.
    pub fn exploration_schedule(&self) -> LinearSchedule {
        LinearSchedule {
            start: self.exploration_initial_eps,
            end: self.exploration_final_eps,
            fraction: self.exploration_fraction,
        }
    }

    /// Checks every field's range; the error names the first bad field.
    pub fn validate(&self) -> Result<(), AlgoError> {
        let bad =
            |field: &'static str, reason: &str| Err(AlgoError::InvalidConfig { field, reason: reason.to_owned() });
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate", "must be positive and finite");
        }
        if self.total_timesteps == 0 {
            return bad("total_timesteps", "must be at least 1");
        }
        if self.buffer_size == 0 {
            return bad("buffer_size", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return bad("tau", "must be in (0, 1]");
        }
        if !unit(self.gamma) {
            return bad("gamma", "must be in [0, 1]");
        }
        if !(1..=u8::MAX as usize).contains(&self.n_steps) {
            return bad("n_steps", "must be in 1..=255");
        }
        if self.train_freq == 0 {
            return bad("train_freq", "must be at least 1");
        }
        if self.target_update_interval == 0 {
            return bad("target_update_interval", "must be at least 1");
        }
        if !unit(self.exploration_fraction) {
            return bad("exploration_fraction", "must be in [0, 1]");
        }
        if !unit(self.exploration_initial_eps) {
            return bad("exploration_initial_eps", "must be in [0, 1]");
        }
        if !unit(self.exploration_final_eps) {
            return bad("exploration_final_eps", "must be in [0, 1]");
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm <= 0.0 {
            return bad("max_grad_norm", "must be positive");
        }
        if self.freeze_layers > self.net_arch.len() {
            return bad("freeze_layers", "cannot exceed the number of hidden layers in net_arch");
        }
        if let Some([low, high]) = self.target_bounds
            && !(low.is_finite() && high.is_finite() && low <= high)
        {
            return bad("target_bounds", "must be finite with low <= high");
        }
        if self.net_arch.contains(&0) {
            return bad("net_arch", "layer widths must be at least 1");
        }
        if self.n_envs == 0 {
            return bad("n_envs", "must be at least 1");
        }
        if self.n_envs > 1 && self.her.is_some() {
            return bad("n_envs", "hindsight replay reads whole episodes in order: use one environment");
        }
        if self.update == UpdatePath::Host && self.dueling {
            return bad("update", "`host` trains plain MLPs; a dueling head needs `burn` (or `auto`)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_field_is_named() {
        assert!(DqnConfig::default().validate().is_ok());
        let cases: Vec<(DqnConfig, &str)> = vec![
            (DqnConfig { learning_rate: 0.0, ..Default::default() }, "learning_rate"),
            (DqnConfig { gamma: 1.5, ..Default::default() }, "gamma"),
            (DqnConfig { tau: 0.0, ..Default::default() }, "tau"),
            (DqnConfig { train_freq: 0, ..Default::default() }, "train_freq"),
            (DqnConfig { exploration_final_eps: -0.1, ..Default::default() }, "exploration_final_eps"),
            (DqnConfig { net_arch: vec![64, 0], ..Default::default() }, "net_arch"),
            (DqnConfig { target_bounds: Some([0.0, -1.0]), ..Default::default() }, "target_bounds"),
            (DqnConfig { n_envs: 0, ..Default::default() }, "n_envs"),
            (DqnConfig { n_steps: 0, ..Default::default() }, "n_steps"),
            (DqnConfig { n_envs: 4, her: Some("future:4".parse().unwrap()), ..Default::default() }, "n_envs"),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert!(matches!(err, AlgoError::InvalidConfig { field: f, .. } if f == field), "{err}");
        }
    }
}
