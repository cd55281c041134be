//! The Python peers beside our learning benchmarks (`--peers`):
//! Stable-Baselines3 on CartPole and with HER on bit flipping, run with the
//! same seeds, budget and evaluation in the same invocation, and compared
//! over seeds (ratio of IQMs and probability of improvement, each with its
//! interval; performance profiles).

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use rlhf_algo::stats::{self, Estimate};
use rlhf_bench::table::{estimate_cell, ratio_cell};
use serde_json::Value;

use super::CartpoleReport;
use super::report::workspace_root;

/// Whether and how to run the Python peers.
#[derive(Debug, Clone, Args)]
pub struct PeerArgs {
    /// Also run the Python peers (Gymnasium, PyTorch, Stable-Baselines3,
    /// scikit-learn) in a virtual environment under `target/peers-venv`,
    /// installing `benches/peers/requirements.txt` there if missing.
    #[arg(long)]
    pub peers: bool,
    /// The Python interpreter that creates the peers' virtual environment.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

impl PeerArgs {
    /// The arguments that pass these options on to another `xtask bench` command.
    pub fn forwarded(&self) -> Vec<&str> {
        if self.peers { vec!["--peers", "--python", &self.python] } else { Vec::new() }
    }
}

/// The peers' virtual environment's Python, the environment created and filled when missing.
pub fn python(args: &PeerArgs) -> anyhow::Result<PathBuf> {
    let venv = workspace_root().join("target").join("peers-venv");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let ok = Command::new(&args.python).arg("-m").arg("venv").arg(&venv).status()?.success();
        anyhow::ensure!(ok, "{} -m venv {} failed", args.python, venv.display());
    }
    let requirements = workspace_root().join("benches").join("peers").join("requirements.txt");
    let ok = Command::new(&python).args(["-m", "pip", "install", "-q", "-r"]).arg(&requirements).status()?.success();
    anyhow::ensure!(ok, "installing {} failed", requirements.display());
    Ok(python)
}

/// Runs `benches/peers/<script>` on one thread and parses its JSON output.
pub fn run(python: &Path, script: &str, args: &[&str]) -> anyhow::Result<Value> {
    let path = workspace_root().join("benches").join("peers").join(script);
    eprintln!("peer: {script} {}", args.join(" "));
    let output = Command::new(python).env("OMP_NUM_THREADS", "1").arg(&path).args(args).arg("--json").output()?;
    super::last_json_line(&output, script)
}

/// The head of a table comparing ours with a peer, row by [`comparison_row`].
const COMPARISON_HEADER: &str = "| | ours | peer | peer / ours | P(ours better) |\n|---|---|---|---|---|\n";

/// What a comparison table's cells are.
const COMPARISON_NOTE: &str = "Ours and the peer: interquartile mean [95% percentile bootstrap interval] over seeds. \
    peer / ours: the ratio of the IQMs (a speed-up where lower is better), its interval from resampling both sides' seeds. \
    P(ours better): the probability that a run of ours beats a run of the peer (ties count half; Agarwal et al. 2021), with its interval.";

/// Which way a measure improves.
#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

/// A row of a [`COMPARISON_HEADER`] table: `label`, each side's IQM over
/// seeds, their ratio (for costs) and the probability that ours is better.
fn comparison_row(label: &str, ours: &[f64], peer: &[f64], decimals: usize, better: Better) -> String {
    let negated = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<f64>>();
    let (ratio, improvement) = match better {
        Better::Lower => (
            ratio_cell(stats::iqm_ratio_interval(ours, peer)),
            stats::probability_of_improvement_interval(&negated(ours), &negated(peer)),
        ),
        Better::Higher => ("-".into(), stats::probability_of_improvement_interval(ours, peer)),
    };
    format!(
        "| {label} | {} | {} | {ratio} | {} |\n",
        estimate_cell(stats::iqm_interval(ours), decimals),
        estimate_cell(stats::iqm_interval(peer), decimals),
        estimate_cell(improvement, 2)
    )
}

/// The share of runs solved within each `τ`, with its interval, from each
/// run's cost to solve (steps or seconds; infinite when unsolved): the
/// performance profile of the negated cost.
fn solved_within(costs: &[f64], taus: &[f64]) -> Vec<Estimate> {
    let negated: Vec<f64> = costs.iter().map(|c| -c).collect();
    // −cost > −τ − ε holds exactly when cost ≤ τ, up to rounding.
    let thresholds: Vec<f64> = taus.iter().map(|t| -t - 1e-9 * t.abs().max(1.0)).collect();
    stats::performance_profile_interval(&negated, &thresholds)
}

/// One side of the CartPole comparison, per seed.
struct CartpoleRuns {
    /// Steps to the first evaluation ≥ 475; the budget when unsolved.
    steps: Vec<f64>,
    /// Seconds to stop: to solve, or the whole run.
    seconds: Vec<f64>,
}

impl CartpoleRuns {
    /// Each run's cost to solve in steps or seconds, infinite when it did not.
    fn costs(&self, seconds: bool, budget: f64) -> Vec<f64> {
        let costs = if seconds { &self.seconds } else { &self.steps };
        costs.iter().zip(&self.steps).map(|(&c, &s)| if s < budget { c } else { f64::INFINITY }).collect()
    }
}

/// `sb3_dqn_cartpole.py` on the seeds and budget of `ours`, compared with
/// them: the table (markdown) to append to the CartPole report, and in
/// `out` the learning curves of both (`curves.png`, replacing ours alone)
/// and the share of runs solved within τ steps and seconds (`profile.png`).
/// Returns the table and SB3's output.
pub fn cartpole(python: &Path, ours: &CartpoleReport, out: &Path) -> anyhow::Result<(String, Value)> {
    let (seeds, budget) = (ours.seeds.to_string(), ours.budget.to_string());
    let sb3 = run(python, "sb3_dqn_cartpole.py", &["--seeds", &seeds, "--steps", &budget])?;
    let runs = sb3["runs"].as_array().map(Vec::as_slice).unwrap_or_default();
    let budget = ours.budget as f64;
    let theirs = CartpoleRuns {
        steps: runs.iter().map(|r| r["solved_at_step"].as_f64().unwrap_or(budget)).collect(),
        seconds: runs
            .iter()
            .map(|r| r["seconds_to_solve"].as_f64().or_else(|| r["wall_seconds"].as_f64()).unwrap_or(f64::NAN))
            .collect(),
    };
    let ours_runs = CartpoleRuns {
        steps: super::steps_to_solve(&ours.runs, ours.budget),
        seconds: ours.runs.iter().map(|r| r.wall_seconds).collect(),
    };

    let solved = |runs: &CartpoleRuns| runs.steps.iter().filter(|&&s| s < budget).count();
    let mut md = format!(
        "\nStable-Baselines3 {} (rl-zoo hyperparameters) beside it: same machine, same run, same seeds, budget and evaluation.\n\n{COMPARISON_HEADER}| seeds solved | {} of {} | {} of {} | | |\n",
        sb3["stable_baselines3"].as_str().unwrap_or("?"),
        solved(&ours_runs),
        ours_runs.steps.len(),
        solved(&theirs),
        theirs.steps.len()
    );
    let label = "steps to first eval ≥ 475 (unsolved: budget)";
    md.push_str(&comparison_row(label, &ours_runs.steps, &theirs.steps, 0, Better::Lower));
    md.push_str(&comparison_row("wall s to stop", &ours_runs.seconds, &theirs.seconds, 2, Better::Lower));
    md.push_str(&format!("\n{COMPARISON_NOTE}\n"));

    let grid = super::evaluation_grid(2_500, ours.budget);
    let sb3_curves: Vec<Vec<(u64, f64)>> =
        runs.iter().map(|r| serde_json::from_value(r["evaluations"].clone()).unwrap_or_default()).collect();
    super::plot_cartpole_curves(
        out,
        ours.seeds,
        &[
            ("ours (DQN, default config)", &super::band_points(&ours.curve)),
            ("Stable-Baselines3 DQN (rl-zoo)", &super::band_points(&stats::curve_interval(&sb3_curves, &grid))),
        ],
    )?;
    let step_taus: Vec<f64> = grid.iter().map(|&s| s as f64).collect();
    let longest = ours_runs.seconds.iter().chain(&theirs.seconds).fold(1.0f64, |a, &b| a.max(b));
    let second_taus: Vec<f64> = (0..=100).map(|i| longest * f64::from(i) / 100.0).collect();
    let profile = |runs: &CartpoleRuns, seconds: bool, taus: &[f64]| -> Vec<(f64, Estimate)> {
        taus.iter().copied().zip(solved_within(&runs.costs(seconds, budget), taus)).collect()
    };
    let by_steps = [profile(&ours_runs, false, &step_taus), profile(&theirs, false, &step_taus)];
    let by_seconds = [profile(&ours_runs, true, &second_taus), profile(&theirs, true, &second_taus)];
    rlhf_bench::plot_band_panels(
        &out.join("profile.png"),
        "CartPole-v1: share of runs solved within τ (95% interval)",
        ("τ", "share of runs solved"),
        0.0..1.05,
        2,
        &[
            ("τ environment steps", &[("ours", &by_steps[0]), ("SB3", &by_steps[1])]),
            ("τ wall seconds", &[("ours", &by_seconds[0]), ("SB3", &by_seconds[1])]),
        ],
    )?;
    Ok((md, sb3))
}

/// `sb3_her_bitflip.py` on `bits` bits with our HER row's budget and seeds,
/// compared with that row: the table (markdown) and SB3's runs.
pub fn her(python: &Path, ours: &super::HerRow, bits: usize) -> anyhow::Result<(String, Value)> {
    let budget = ours.budget.to_string();
    let sb3: Vec<Value> = ours
        .runs
        .iter()
        .map(|r| {
            let (bits, seed) = (bits.to_string(), r.seed.to_string());
            run(python, "sb3_her_bitflip.py", &["--bits", &bits, "--steps", &budget, "--seed", &seed])
        })
        .collect::<anyhow::Result<_>>()?;
    let budget = ours.budget as f64;
    let column = |values: &dyn Fn(&Value) -> Option<f64>, otherwise: f64| -> Vec<f64> {
        sb3.iter().map(|r| values(r).unwrap_or(otherwise)).collect()
    };
    let mut md = format!(
        "\nStable-Baselines3 DQN + HER (`future`, k = 4) beside ours ({}) on {bits} bits: same budget ({budget} steps), seeds and evaluation, same run.\n\n{COMPARISON_HEADER}",
        ours.method()
    );
    md.push_str(&comparison_row(
        "greedy success (100 episodes)",
        &ours.successes(),
        &column(&|r| r["final_success_rate"].as_f64(), 0.0),
        2,
        Better::Higher,
    ));
    md.push_str(&comparison_row(
        "steps to success ≥ 0.99 (unsolved: budget)",
        &super::steps_to_solve(&ours.runs, ours.budget),
        &column(&|r| r["solved_at_step"].as_f64(), budget),
        0,
        Better::Lower,
    ));
    md.push_str(&comparison_row(
        "wall s (to solve, or the whole run)",
        &ours.runs.iter().map(|r| r.wall_seconds).collect::<Vec<_>>(),
        &column(&|r| r["seconds_to_solve"].as_f64().or_else(|| r["wall_seconds"].as_f64()), f64::NAN),
        1,
        Better::Lower,
    ));
    md.push_str(&format!("\n{COMPARISON_NOTE}\n"));
    Ok((md, Value::Array(sb3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_rows_give_both_iqms_the_speed_up_and_who_wins() {
        // Ours always takes 2 s, the peer 4 s: a 2× speed-up, every pair ours.
        let row = comparison_row("wall s", &[2.0; 3], &[4.0; 4], 2, Better::Lower);
        assert_eq!(row, "| wall s | 2.00 [2.00–2.00] | 4.00 [4.00–4.00] | 2.0× [2.0–2.0] | 1.00 [1.00–1.00] |\n");
        // Higher is better: no ratio; 0.9 against 0.5 and 1.0 wins one pair of two.
        let row = comparison_row("success", &[0.9], &[0.5, 1.0], 2, Better::Higher);
        assert!(row.ends_with("| - | 0.50 [0.00–1.00] |\n"), "{row}");
    }

    #[test]
    fn the_share_solved_within_tau_counts_runs_at_or_below_it() {
        let costs = [1_000.0, 2_000.0, f64::INFINITY];
        let values: Vec<f64> = solved_within(&costs, &[999.0, 1_000.0, 2_500.0]).iter().map(|e| e.value).collect();
        assert_eq!(values, vec![0.0, 1.0 / 3.0, 2.0 / 3.0]);
        let runs = CartpoleRuns { steps: vec![2_500.0, 50_000.0], seconds: vec![1.5, 9.0] };
        assert_eq!(runs.costs(true, 50_000.0), vec![1.5, f64::INFINITY], "an unsolved run never counts");
    }
}
