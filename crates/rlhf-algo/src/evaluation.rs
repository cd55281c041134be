//! Playing whole episodes with a policy and summarising them.

use rlhf_env::{Env, EpisodeOutcome};

use crate::error::AlgoError;
use crate::policy::Policy;

/// Returns and lengths of evaluation episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// The undiscounted return of each episode.
    pub returns: Vec<f64>,
    /// The number of steps of each episode.
    pub lengths: Vec<usize>,
    /// Mean of `returns`.
    pub mean_return: f64,
    /// Population standard deviation of `returns`.
    pub std_return: f64,
    /// Fraction of episodes whose last step reported success, for tasks
    /// that report it (goal environments); `None` otherwise.
    pub success_rate: Option<f64>,
}

impl EvalReport {
    fn new(returns: Vec<f64>, lengths: Vec<usize>, successes: Option<usize>) -> Self {
        let n = returns.len().max(1) as f64;
        let mean_return = returns.iter().sum::<f64>() / n;
        let std_return = (returns.iter().map(|r| (r - mean_return).powi(2)).sum::<f64>() / n).sqrt();
        let success_rate = successes.map(|s| s as f64 / n);
        Self { returns, lengths, mean_return, std_return, success_rate }
    }
}

/// Plays `episodes` episodes with `policy`; the first reset is seeded with
/// `seed`, later ones continue the environment's stream, so the report is
/// reproducible. The environment must end its episodes (wrap it in a
/// `TimeLimit` if it may not).
pub fn evaluate<E, P>(env: &mut E, policy: &mut P, episodes: usize, seed: u64) -> Result<EvalReport, AlgoError>
where
    E: Env,
    E::Info: EpisodeOutcome,
    P: Policy<E::Obs, E::Action>,
{
    if episodes == 0 {
        return Err(AlgoError::InvalidConfig { field: "episodes", reason: "must be at least 1".into() });
    }
    let mut returns = Vec::with_capacity(episodes);
    let mut lengths = Vec::with_capacity(episodes);
    let mut successes = None;
    for episode in 0..episodes {
        let (mut obs, _) = env.reset((episode == 0).then_some(seed));
        let (mut total, mut length) = (0.0, 0);
        loop {
            let step = env.step(policy.act(&obs))?;
            total += step.reward;
            length += 1;
            if step.done() {
                if let Some(success) = step.info.is_success() {
                    *successes.get_or_insert(0) += usize::from(success);
                }
                break;
            }
            obs = step.obs;
        }
        returns.push(total);
        lengths.push(length);
    }
    Ok(EvalReport::new(returns, lengths, successes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlhf_env::CartPole;

    #[test]
    fn cartpole_returns_equal_lengths_and_the_summary_is_right() {
        let mut env = CartPole::v1();
        let mut always_left = |_: &[f32; 4]| 0usize;
        let report = evaluate(&mut env, &mut always_left, 4, 1).unwrap();
        // Reward 1 per step, terminating step included.
        let lengths: Vec<f64> = report.lengths.iter().map(|&l| l as f64).collect();
        assert_eq!(report.returns, lengths);
        let mean = lengths.iter().sum::<f64>() / 4.0;
        assert_eq!(report.mean_return, mean);
        // Pushing one way from near rest topples the pole in well under a second.
        assert!(report.lengths.iter().all(|&l| (5..50).contains(&l)), "{:?}", report.lengths);
        assert_eq!(report.success_rate, None, "CartPole has no goal");
    }

    #[test]
    fn goal_tasks_report_the_success_rate() {
        // Flipping every differing bit, in order, always succeeds.
        let mut env = rlhf_env::BitFlipping::new(6).unwrap();
        let mut solver =
            |obs: &rlhf_env::GoalObs| (0..6).find(|&i| obs.observation[i] != obs.desired_goal[i]).unwrap_or(0);
        let report = evaluate(&mut env, &mut solver, 20, 3).unwrap();
        assert_eq!(report.success_rate, Some(1.0));
        // Flipping bit 0 back and forth succeeds only when the goal differs in bit 0 alone.
        let report = evaluate(&mut env, &mut |_: &rlhf_env::GoalObs| 0usize, 200, 3).unwrap();
        let rate = report.success_rate.unwrap();
        assert!(rate > 0.0 && rate < 0.1, "{rate}");
    }

    #[test]
    fn zero_episodes_is_an_error() {
        let err = evaluate(&mut CartPole::v1(), &mut |_: &[f32; 4]| 0usize, 0, 0).unwrap_err();
        assert_eq!(err.to_string(), "invalid value for `episodes`: must be at least 1");
    }
}
