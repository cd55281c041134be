//! Schedules of a value over training, such as the exploration rate.

use serde::{Deserialize, Serialize};

/// A value that moves linearly from `start` to `end` over the first
/// `fraction` of training and then stays at `end` (Stable-Baselines3's
/// `get_linear_fn`, used for DQN's epsilon).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearSchedule {
    /// Value at the start of training.
    pub start: f64,
    /// Value from `fraction` of training on.
    pub end: f64,
    /// Fraction of training over which the value moves.
    pub fraction: f64,
}

impl LinearSchedule {
    /// The value after `step` of `total` steps.
    pub fn value(&self, step: u64, total: u64) -> f64 {
        let progress = if total == 0 { 1.0 } else { step as f64 / total as f64 };
        if self.fraction <= 0.0 || progress >= self.fraction {
            self.end
        } else {
            self.start + progress * (self.end - self.start) / self.fraction
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_by_hand() {
        let eps = LinearSchedule { start: 1.0, end: 0.04, fraction: 0.16 };
        // 50,000 steps: the decay ends at step 8,000.
        assert_eq!(eps.value(0, 50_000), 1.0);
        assert!((eps.value(4_000, 50_000) - 0.52).abs() < 1e-12);
        assert_eq!(eps.value(8_000, 50_000), 0.04);
        assert_eq!(eps.value(49_999, 50_000), 0.04);
        let constant = LinearSchedule { start: 0.5, end: 0.1, fraction: 0.0 };
        assert_eq!(constant.value(0, 10), 0.1);
    }
}
