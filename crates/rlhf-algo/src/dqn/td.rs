//! The TD target of DQN, with double Q-learning and n-step returns.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// The TD targets `y = r + γᵏ · Q_target(s', a*) · (1 - terminated)`.
///
/// - `rewards`, `terminated`: `[batch]` (terminated is 1.0 or 0.0; a
///   truncated transition has 0.0 and is bootstrapped).
/// - `discounts`: `[batch]`, γᵏ for a transition `s → s'` over k steps (γ
///   for one step; `r` is then the discounted sum of the k rewards).
/// - `next_q_target`: `[batch, n_actions]`, the target network at `s'`.
/// - `next_q_online`: `[batch, n_actions]`, the online network at `s'`, for
///   double Q-learning (`a* = argmax_a Q_online(s', a)`); `None` uses
///   `a* = argmax_a Q_target(s', a)`.
///
/// Returns `[batch]`.
pub fn td_targets<B: Backend>(
    rewards: Tensor<B, 1>,
    terminated: Tensor<B, 1>,
    discounts: Tensor<B, 1>,
    next_q_target: Tensor<B, 2>,
    next_q_online: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    let next_value: Tensor<B, 1> = match next_q_online {
        None => next_q_target.max_dim(1).squeeze_dim(1),
        Some(online) => next_q_target.gather(1, online.argmax(1)).squeeze_dim(1),
    };
    let not_terminal = terminated.neg().add_scalar(1.0);
    rewards + next_value * not_terminal * discounts
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use rlhf_model::backend::{CpuBackend, cpu_device};

    fn t1(v: Vec<f32>) -> Tensor<CpuBackend, 1> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), &cpu_device())
    }

    fn t2(v: Vec<f32>, rows: usize) -> Tensor<CpuBackend, 2> {
        let cols = v.len() / rows;
        Tensor::from_data(TensorData::new(v, [rows, cols]), &cpu_device())
    }

    fn values(t: Tensor<CpuBackend, 1>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn targets_by_hand_terminated_versus_truncated() {
        // Transition 0: ordinary; 1: terminated (no bootstrap); 2: truncated
        // (terminated = 0, so it bootstraps like 0).
        let rewards = vec![1.0, 1.0, 0.5];
        let terminated = vec![0.0, 1.0, 0.0];
        let next_q = vec![1.0, 3.0, 5.0, 2.0, 0.0, -1.0];
        let gamma = || t1(vec![0.9; 3]);
        let y = values(td_targets(t1(rewards.clone()), t1(terminated.clone()), gamma(), t2(next_q.clone(), 3), None));
        let expected = [1.0 + 0.9 * 3.0, 1.0, 0.5 + 0.9 * 0.0];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // Double Q: the online network prefers actions [0, 1, 1].
        let online = vec![5.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let y = values(td_targets(
            t1(rewards.clone()),
            t1(terminated.clone()),
            gamma(),
            t2(next_q.clone(), 3),
            Some(t2(online, 3)),
        ));
        let expected = [1.0 + 0.9 * 1.0, 1.0, 0.5 - 0.9];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // Three-step returns: the reward is already the discounted sum of
        // three rewards, and the bootstrap is discounted by γ³; a
        // terminated one still has none.
        let y = values(td_targets(t1(rewards), t1(terminated), t1(vec![0.729; 3]), t2(next_q, 3), None));
        let expected = [1.0 + 0.729 * 3.0, 1.0, 0.5 + 0.729 * 0.0];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }
}
