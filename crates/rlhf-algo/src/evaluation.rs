//! Playing whole episodes with a policy and summarising them.

use rlhf_env::Env;

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
}

impl EvalReport {
    fn new(returns: Vec<f64>, lengths: Vec<usize>) -> Self {
        let n = returns.len().max(1) as f64;
        let mean_return = returns.iter().sum::<f64>() / n;
        let std_return = (returns.iter().map(|r| (r - mean_return).powi(2)).sum::<f64>() / n).sqrt();
        Self { returns, lengths, mean_return, std_return }
    }
}

/// Plays `episodes` episodes with `policy`; the first reset is seeded with
/// `seed`, later ones continue the environment's stream, so the report is
/// reproducible. The environment must end its episodes (wrap it in a
/// `TimeLimit` if it may not).
pub fn evaluate<E, P>(env: &mut E, policy: &mut P, episodes: usize, seed: u64) -> Result<EvalReport, AlgoError>
where
    E: Env,
    P: Policy<E::Obs, E::Action>,
{
    if episodes == 0 {
        return Err(AlgoError::InvalidConfig { field: "episodes", reason: "must be at least 1".into() });
    }
    let mut returns = Vec::with_capacity(episodes);
    let mut lengths = Vec::with_capacity(episodes);
    for episode in 0..episodes {
        let (mut obs, _) = env.reset((episode == 0).then_some(seed));
        let (mut total, mut length) = (0.0, 0);
        loop {
            let step = env.step(policy.act(&obs))?;
            total += step.reward;
            length += 1;
            if step.done() {
                break;
            }
            obs = step.obs;
        }
        returns.push(total);
        lengths.push(length);
    }
    Ok(EvalReport::new(returns, lengths))
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
    }

    #[test]
    fn zero_episodes_is_an_error() {
        let err = evaluate(&mut CartPole::v1(), &mut |_: &[f32; 4]| 0usize, 0, 0).unwrap_err();
        assert_eq!(err.to_string(), "invalid value for `episodes`: must be at least 1");
    }
}
