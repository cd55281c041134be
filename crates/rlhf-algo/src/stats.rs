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

/// Resamples per interval in our reports (rliable uses 2,000 to 50,000).
pub const REPORT_RESAMPLES: usize = 10_000;
/// Coverage of the intervals in our reports.
pub const REPORT_CONFIDENCE: f64 = 0.95;

/// The interquartile mean of `values` with its 95% percentile bootstrap
/// interval ([`REPORT_RESAMPLES`] resamples, seed 0): how every learning
/// table of the benchmarks reports a result over seeds.
pub fn iqm_interval(values: &[f64]) -> Option<Estimate> {
    bootstrap(values, iqm, REPORT_RESAMPLES, REPORT_CONFIDENCE, 0)
}

/// A result over seeds as the benchmark reports keep it: how many seeds, and
/// their IQM with its 95% interval ([`iqm_interval`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OverSeeds {
    /// Number of seeds (runs).
    pub seeds: usize,
    /// Their interquartile mean and its interval; `None` for no seeds.
    pub iqm: Option<Estimate>,
}

impl OverSeeds {
    /// The summary of one value per seed.
    pub fn new(values: &[f64]) -> Self {
        Self { seeds: values.len(), iqm: iqm_interval(values) }
    }
}

/// `statistic` of `values` with a percentile bootstrap interval at
/// `confidence` (e.g. 0.95) from `reps` resamples drawn with `seed`.
pub fn bootstrap(
    values: &[f64],
    statistic: impl Fn(&[f64]) -> Option<f64>,
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
    statistic: impl Fn(&[f64]) -> Option<f64>,
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
    Some(percentile_interval(value, estimates, confidence))
}

/// A statistic comparing two independent samples (e.g. the ratio of their
/// IQMs), with a percentile bootstrap interval from resampling each sample
/// on its own, `reps` times. `None` when a sample is empty or the statistic
/// is undefined on the data or on a resample.
pub fn bootstrap_two_samples(
    x: &[f64],
    y: &[f64],
    statistic: impl Fn(&[f64], &[f64]) -> Option<f64>,
    reps: usize,
    confidence: f64,
    seed: u64,
) -> Option<Estimate> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let value = statistic(x, y)?;
    let mut rng = seeded_rng(seed);
    let mut draw = |values: &[f64], into: &mut Vec<f64>| {
        into.clear();
        into.extend((0..values.len()).map(|_| values[uniform_index(&mut rng, values.len())]));
    };
    let (mut rx, mut ry) = (Vec::with_capacity(x.len()), Vec::with_capacity(y.len()));
    let mut estimates = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        draw(x, &mut rx);
        draw(y, &mut ry);
        estimates.push(statistic(&rx, &ry)?);
    }
    Some(percentile_interval(value, estimates, confidence))
}

/// The central `confidence` interval of bootstrap `estimates` around `value`.
fn percentile_interval(value: f64, mut estimates: Vec<f64>, confidence: f64) -> Estimate {
    estimates.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence.clamp(0.0, 1.0)) / 2.0;
    Estimate { value, low: quantile(&estimates, tail), high: quantile(&estimates, 1.0 - tail) }
}

/// How much larger `y`'s IQM is than `x`'s (e.g. a peer's seconds to solve
/// over ours: the speed-up), with the two-sample bootstrap interval of our
/// reports. `None` when `x`'s IQM is not positive.
pub fn iqm_ratio_interval(x: &[f64], y: &[f64]) -> Option<Estimate> {
    let ratio = |x: &[f64], y: &[f64]| iqm(x).filter(|&d| d > 0.0).and_then(|d| Some(iqm(y)? / d));
    bootstrap_two_samples(x, y, ratio, REPORT_RESAMPLES, REPORT_CONFIDENCE, 0)
}

/// [`probability_of_improvement`] of `x` over `y` with the two-sample
/// bootstrap interval of our reports.
pub fn probability_of_improvement_interval(x: &[f64], y: &[f64]) -> Option<Estimate> {
    bootstrap_two_samples(x, y, probability_of_improvement, REPORT_RESAMPLES, REPORT_CONFIDENCE, 0)
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
    thresholds.iter().map(|&tau| fraction_above(values, tau, n)).collect()
}

fn fraction_above(values: &[f64], tau: f64, n: f64) -> f64 {
    values.iter().filter(|&&v| v > tau).count() as f64 / n
}

/// The performance profile with a bootstrap interval at every threshold
/// (the bands of rliable's profile plots); empty for no runs.
pub fn performance_profile_interval(values: &[f64], thresholds: &[f64]) -> Vec<Estimate> {
    thresholds
        .iter()
        .filter_map(|&tau| {
            let above = |v: &[f64]| Some(fraction_above(v, tau, v.len() as f64));
            bootstrap(values, above, REPORT_RESAMPLES, REPORT_CONFIDENCE, 0)
        })
        .collect()
}

/// A learning curve over runs: at every point of `grid`, the IQM of the
/// runs' values there ([`sample_step_curve`]: a run that stopped early holds
/// its last value) with its interval; points no run has reached are left out.
pub fn curve_interval(runs: &[Vec<(u64, f64)>], grid: &[u64]) -> Vec<(u64, Estimate)> {
    let sampled: Vec<Vec<Option<f64>>> = runs.iter().map(|run| sample_step_curve(run, grid)).collect();
    grid.iter()
        .enumerate()
        .filter_map(|(i, &x)| {
            let values: Vec<f64> = sampled.iter().filter_map(|run| run[i]).collect();
            Some((x, iqm_interval(&values)?))
        })
        .collect()
}

/// A step function sampled on `grid`: at each grid point, the value of the
/// last point of `points` (sorted by x) at or before it; a run that stopped
/// early holds its last value. `None` before the first point.
pub fn sample_step_curve(points: &[(u64, f64)], grid: &[u64]) -> Vec<Option<f64>> {
    grid.iter().map(|&x| points.iter().take_while(|p| p.0 <= x).last().map(|p| p.1)).collect()
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
    fn two_sample_intervals_of_ratios_and_improvement() {
        // Constant samples: every resample gives the same ratio.
        let ratio = iqm_ratio_interval(&[2.0; 5], &[30.0; 7]).unwrap();
        assert_eq!((ratio.value, ratio.low, ratio.high), (15.0, 15.0, 15.0));
        assert_eq!(iqm_ratio_interval(&[0.0; 3], &[1.0]), None, "no ratio to a zero IQM");
        // Every run of x beats every run of y, in every resample too.
        let p = probability_of_improvement_interval(&[5.0, 6.0, 7.0], &[1.0, 2.0]).unwrap();
        assert_eq!((p.value, p.low, p.high), (1.0, 1.0, 1.0));
        // Overlapping samples: the interval holds the estimate and stays in [0, 1].
        let p = probability_of_improvement_interval(&[3.0, 5.0, 7.0, 9.0], &[2.0, 4.0, 6.0]).unwrap();
        // 3 beats one run of y, 5 two, 7 and 9 three each: 9 of 12 pairs.
        assert_eq!(p.value, 0.75);
        assert!(0.0 <= p.low && p.low < p.value && p.value < p.high && p.high <= 1.0, "{p:?}");
        assert_eq!(bootstrap_two_samples(&[], &[1.0], |_, _| Some(0.0), 10, 0.95, 0), None);
    }

    #[test]
    fn percentile_intervals_of_the_mean_cover_the_true_mean_about_95_percent_of_the_time() {
        // Samples of 30 from the uniform distribution on [0, 1) (mean 0.5).
        // A 95% bootstrap interval of the mean misses the truth in about 5%
        // of samples (a little more at n = 30: the percentile interval is
        // slightly too narrow); 400 samples give a standard error of 1.1%.
        let mut rng = seeded_rng(7);
        let trials = 400;
        let covered = (0..trials)
            .filter(|&t| {
                let sample: Vec<f64> =
                    (0..30).map(|_| uniform_index(&mut rng, 1 << 20) as f64 / (1 << 20) as f64).collect();
                let ci = bootstrap(&sample, mean, 1_000, 0.95, t).unwrap();
                ci.low <= 0.5 && 0.5 <= ci.high
            })
            .count();
        let coverage = covered as f64 / trials as f64;
        assert!((0.88..=0.99).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn curves_are_sampled_as_step_functions_and_summarised_per_point() {
        let evaluations = [(2_500, 20.0), (5_000, 200.0), (7_500, 500.0)];
        assert_eq!(
            sample_step_curve(&evaluations, &[0, 2_500, 4_000, 7_500, 10_000]),
            vec![None, Some(20.0), Some(20.0), Some(500.0), Some(500.0)],
            "a run that stopped at 7,500 holds its last evaluation"
        );
        // Two runs evaluated at 10 and 20; the second starts later, at 20.
        let runs = vec![vec![(10, 1.0), (20, 2.0)], vec![(20, 4.0)]];
        let bands = curve_interval(&runs, &[5, 10, 20, 30]);
        let constant = |v: f64| Estimate { value: v, low: v, high: v };
        assert_eq!(bands[0], (10, constant(1.0)), "no run had been evaluated at 5; at 10 only the first");
        assert_eq!((bands[1].0, bands[1].1.value), (20, 3.0));
        assert_eq!(bands[2].1.value, 3.0, "both hold their last value at 30");
        assert_eq!(bands.len(), 3);
        assert!(curve_interval(&[], &[1, 2]).is_empty());
    }

    #[test]
    fn performance_profiles_fall_from_one_to_zero() {
        let scores = [10.0, 20.0, 30.0, 40.0];
        let thresholds = [0.0, 15.0, 30.0, 40.0];
        assert_eq!(performance_profile(&scores, &thresholds), vec![1.0, 0.75, 0.25, 0.0]);
        let bands = performance_profile_interval(&scores, &thresholds);
        let values: Vec<f64> = bands.iter().map(|e| e.value).collect();
        assert_eq!(values, vec![1.0, 0.75, 0.25, 0.0]);
        // All runs above (or none): no resample can change that.
        assert_eq!((bands[0].low, bands[3].high), (1.0, 0.0));
        assert!(bands[1].low < 0.75 && bands[1].high == 1.0, "{:?}", bands[1]);
    }
}
