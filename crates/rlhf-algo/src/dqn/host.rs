//! DQN's gradient step in host memory ([`HostUpdate`]): the same update as
//! the burn path in `agent.rs` (TD targets with double Q and n-step
//! discounts, clipped targets, Huber or MSE on Q(s, a), Adam with per-tensor
//! norm clipping), on [`HostMlp`]s with every buffer reused, so a small
//! network's step costs its arithmetic rather than dispatch and allocation.

use rlhf_model::{HostAdam, HostAdamConfig, HostMlp, HostQNetwork, MlpGradients, Tape, argmax};

use super::config::{DqnConfig, LossKind};
use crate::error::AlgoError;
use crate::replay::ReplayBatch;

/// Online and target networks, Adam's state and the step's reused buffers.
#[derive(Debug, Clone)]
pub(super) struct HostUpdate {
    pub(super) online: HostMlp,
    pub(super) target: HostMlp,
    pub(super) adam: HostAdam,
    /// Layers below this one are frozen (fine-tuning).
    trainable_from: usize,
    tape: Tape,
    next_tape: Tape,
    next_online_tape: Tape,
    grads: MlpGradients,
    /// dLoss/dQ, `[batch, n_actions]`, zero but for the actions taken.
    d_q: Vec<f32>,
}

/// DQN's Adam, for both paths: β = (0.9, 0.999), ε = 1e-8 (Stable-Baselines3's), each tensor's gradient norm clipped.
pub(super) fn adam_config(config: &DqnConfig) -> HostAdamConfig {
    HostAdamConfig { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, clip_norm: Some(config.max_grad_norm as f32) }
}

impl HostUpdate {
    /// Starts from `online` (the target a copy of it) with `adam`'s state;
    /// the first `frozen` hidden layers are kept fixed.
    pub(super) fn new(online: HostMlp, target: HostMlp, adam: HostAdam, frozen: usize) -> Self {
        let trainable_from = frozen.min(online.n_layers() - 1);
        Self {
            online,
            target,
            adam,
            trainable_from,
            tape: Tape::default(),
            next_tape: Tape::default(),
            next_online_tape: Tape::default(),
            grads: MlpGradients::default(),
            d_q: Vec::new(),
        }
    }

    /// One gradient step on `batch`; returns (loss, mean Q(s, a)).
    pub(super) fn gradient_step(&mut self, batch: &ReplayBatch, config: &DqnConfig) -> Result<(f64, f64), AlgoError> {
        let n = batch.actions.len();
        let n_actions = self.online.n_actions();
        // Targets: r + γᵏ · Q_target(s', a*) · (1 − terminated), a* from the
        // online network with double Q, else from the target network.
        let next_q = self.target.forward(&batch.next_obs, n, &mut self.next_tape)?;
        let next_online = match config.double_q {
            true => Some(self.online.forward(&batch.next_obs, n, &mut self.next_online_tape)?),
            false => None,
        };
        let q = self.online.forward(&batch.obs, n, &mut self.tape)?;
        self.d_q.clear();
        self.d_q.resize(n * n_actions, 0.0);
        let (mut loss_sum, mut q_sum) = (0.0f32, 0.0f32);
        let scale = 1.0 / n as f32;
        for i in 0..n {
            let row = &next_q[i * n_actions..][..n_actions];
            let best = match next_online {
                Some(online) => argmax(&online[i * n_actions..][..n_actions]),
                None => argmax(row),
            };
            let discount = config.gamma.powi(i32::from(batch.steps[i])) as f32;
            let mut target = batch.rewards[i] + row[best] * (1.0 - batch.terminated[i]) * discount;
            if let Some([low, high]) = config.target_bounds {
                target = target.clamp(low as f32, high as f32);
            }
            let action = usize::try_from(batch.actions[i]).unwrap_or(0).min(n_actions - 1);
            let q_taken = q[i * n_actions + action];
            q_sum += q_taken;
            let error = q_taken - target;
            let (loss, d_loss) = match config.loss {
                LossKind::Huber if error.abs() <= 1.0 => (0.5 * error * error, error),
                LossKind::Huber => (error.abs() - 0.5, error.signum()),
                LossKind::Mse => (error * error, 2.0 * error),
            };
            loss_sum += loss;
            self.d_q[i * n_actions + action] = d_loss * scale;
        }
        self.online.backward(&batch.obs, &self.tape, &self.d_q, self.trainable_from, &mut self.grads)?;
        self.adam.step(&mut self.online, &self.grads, config.learning_rate)?;
        Ok((f64::from(loss_sum * scale), f64::from(q_sum * scale)))
    }

    /// Hard copy (`tau` ≥ 1) or Polyak averaging of the target network.
    pub(super) fn update_target(&mut self, tau: f64) -> Result<(), AlgoError> {
        if tau >= 1.0 {
            self.target.clone_from(&self.online);
        } else {
            self.target.blend_towards(&self.online, tau)?;
        }
        Ok(())
    }

    /// A copy of the online network for acting.
    pub(super) fn acting(&self) -> HostQNetwork {
        self.online.to_host_q_network()
    }

    /// The online network's greedy action for each of the `n` rows of `inputs`.
    pub(super) fn greedy_actions(&mut self, inputs: &[f32], n: usize) -> Result<Vec<usize>, AlgoError> {
        let q = self.online.forward(inputs, n, &mut self.next_online_tape)?;
        Ok(q.chunks_exact(self.online.n_actions()).map(argmax).collect())
    }
}
