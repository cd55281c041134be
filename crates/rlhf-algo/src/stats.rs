//! Statistics of learning results over seeds, as the field reports them
//! (Agarwal et al. 2021, "Deep RL at the edge of the statistical
//! precipice"; the rliable library): the interquartile mean, percentile
//! and stratified bootstrap confidence intervals, the probability of
//! improvement, and performance profiles. Resampling draws from a seeded
//! generator, so every interval is reproducible.

use rlhf_env::rng::{seeded_rng, uniform_index};

/// The arithmetic mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The median (the mean of the two middle values for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let sorted = sorted(values);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The interquartile mean: the mean of the values left after cutting
/// ⌊n/4⌋ from each end of the sorted values (scipy's `trim_mean(x, 0.25)`,
/// which rliable uses). Robust to a few outlying seeds, less noisy than the median.
pub fn iqm(values: &[f64]) -> Option<f64> {
    let sorted = sorted(values);
    let cut = sorted.len() / 4;
    mean(&sorted[cut..sorted.len() - cut])
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// A statistic with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The statistic on the data.
    pub value: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

/// The `q`-quantile of sorted values, interpolating linearly (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

/// `statistic` of `values` with a percentile bootstrap interval at
/// `confidence` (e.g. 0.95) from `reps` resamples drawn with `seed`.
pub fn bootstrap(
    values: &[f64],
    statistic: fn(&[f64]) -> Option<f64>,
    reps: usize,
    confidence: f64,
    seed: u64,
) -> Option<Estimate> {
    stratified_bootstrap(&[values.to_vec()], statistic, reps, confidence, seed)
}

/// The stratified bootstrap of rliable: `statistic` of the scores of every
/// task pooled, with an interval from resampling each task's runs (with
/// replacement, within the task) `reps` times. With one task it is the
/// percentile bootstrap. `None` when a task has no runs.
pub fn stratified_bootstrap(
    tasks: &[Vec<f64>],
    statistic: fn(&[f64]) -> Option<f64>,
    reps: usize,
    confidence: f64,
    seed: u64,
) -> Option<Estimate> {
    if tasks.is_empty() || tasks.iter().any(Vec::is_empty) {
        return None;
    }
    let pooled: Vec<f64> = tasks.concat();
    let value = statistic(&pooled)?;
    let mut rng = seeded_rng(seed);
    let mut resample = Vec::with_capacity(pooled.len());
    let mut estimates = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        resample.clear();
        for runs in tasks {
            resample.extend((0..runs.len()).map(|_| runs[uniform_index(&mut rng, runs.len())]));
        }
        estimates.push(statistic(&resample)?);
    }
    estimates.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence.clamp(0.0, 1.0)) / 2.0;
    Some(Estimate { value, low: quantile(&estimates, tail), high: quantile(&estimates, 1.0 - tail) })
}

/// The probability that a run of `x` beats a run of `y`, ties counting one
/// half: the Mann–Whitney U statistic over all pairs, divided by their
/// number (rliable's probability of improvement on one task).
pub fn probability_of_improvement(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let wins: f64 = x
        .iter()
        .flat_map(|a| {
            y.iter().map(move |b| {
                if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                }
            })
        })
        .sum();
    Some(wins / (x.len() * y.len()) as f64)
}

/// The performance profile: for each threshold τ, the fraction of runs
/// whose score is above τ.
pub fn performance_profile(values: &[f64], thresholds: &[f64]) -> Vec<f64> {
    let n = values.len().max(1) as f64;
    thresholds.iter().map(|&tau| values.iter().filter(|&&v| v > tau).count() as f64 / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_medians_and_interquartile_means_by_hand() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(mean(&ten), Some(5.5));
        assert_eq!(median(&ten), Some(5.5));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        // n = 10: cut ⌊2.5⌋ = 2 from each end, the mean of 3..=8.
        assert_eq!(iqm(&ten), Some(5.5));
        // One outlying seed moves the mean a lot, the IQM not at all.
        assert_eq!(iqm(&[1.0, 2.0, 3.0, 4.0, 100.0]), Some(3.0));
        assert_eq!(mean(&[1.0, 2.0, 3.0, 4.0, 100.0]), Some(22.0));
        // Fewer than four values: nothing to cut.
        assert_eq!(iqm(&[1.0, 5.0]), Some(3.0));
        assert_eq!((mean(&[]), median(&[]), iqm(&[])), (None, None, None));
    }

    #[test]
    fn bootstrap_intervals_hold_the_estimate_are_seeded_and_shrink_with_data() {
        let few = [480.0, 500.0, 350.0, 500.0, 420.0];
        let ci = bootstrap(&few, mean, 2_000, 0.95, 1).unwrap();
        assert_eq!(ci.value, 450.0);
        assert!(ci.low < ci.value && ci.value < ci.high && ci.low >= 350.0 && ci.high <= 500.0, "{ci:?}");
        assert_eq!(ci, bootstrap(&few, mean, 2_000, 0.95, 1).unwrap(), "same seed, same interval");
        let many: Vec<f64> = few.iter().cycle().take(50).copied().collect();
        let narrow = bootstrap(&many, mean, 2_000, 0.95, 1).unwrap();
        assert!(narrow.high - narrow.low < 0.5 * (ci.high - ci.low), "{narrow:?} vs {ci:?}");
        // A constant sample has a zero-width interval.
        assert_eq!(bootstrap(&[7.0; 4], iqm, 100, 0.95, 0), Some(Estimate { value: 7.0, low: 7.0, high: 7.0 }));
        assert_eq!(bootstrap(&[], mean, 100, 0.95, 0), None);
    }

    #[test]
    fn stratified_resampling_keeps_each_task_s_runs_apart() {
        // Task A always scores 0, task B always 1: every resample keeps one
        // run of each per pair, so the pooled mean never moves from 0.5.
        let tasks = vec![vec![0.0; 3], vec![1.0; 3]];
        let ci = stratified_bootstrap(&tasks, mean, 500, 0.95, 3).unwrap();
        assert_eq!((ci.value, ci.low, ci.high), (0.5, 0.5, 0.5));
        assert_eq!(stratified_bootstrap(&[vec![1.0], vec![]], mean, 10, 0.95, 0), None);
    }

    #[test]
    fn probability_of_improvement_counts_pairs_and_ties() {
        assert_eq!(probability_of_improvement(&[2.0, 3.0], &[1.0, 1.0]), Some(1.0));
        assert_eq!(probability_of_improvement(&[1.0], &[1.0]), Some(0.5));
        // Pairs (1,0) win, (1,2) lose, (3,0) win, (3,2) win: 3 of 4.
        assert_eq!(probability_of_improvement(&[1.0, 3.0], &[0.0, 2.0]), Some(0.75));
        let (x, y) = ([5.0, 1.0, 4.0], [2.0, 3.0]);
        let (p, q) = (probability_of_improvement(&x, &y).unwrap(), probability_of_improvement(&y, &x).unwrap());
        assert!((p + q - 1.0).abs() < 1e-12, "P(X > Y) + P(Y > X) = 1 without ties");
        assert_eq!(probability_of_improvement(&[], &[1.0]), None);
    }

    #[test]
    fn performance_profiles_fall_from_one_to_zero() {
        let scores = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(performance_profile(&scores, &[0.0, 15.0, 30.0, 40.0]), vec![1.0, 0.75, 0.25, 0.0]);
    }
}
