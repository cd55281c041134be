//! `cargo xtask bench`: learning benchmarks with fixed seeds.
//!
//! `bench cartpole --seeds N` trains DQN with the default config on seeds
//! `0..N` (each its own run folder under `runs/bench-cartpole/`), then
//! prints and writes (`runs/bench-cartpole/report.{json,md}`) a table:
//! environment steps to the first 10-episode evaluation with mean ≥ 475,
//! the kept model's greedy mean over 100 fresh episodes, wall seconds and
//! gradient updates per second.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::train::{Algo, Summary, TrainArgs, train};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// DQN on CartPole-v1 over several seeds.
    Cartpole {
        /// Number of seeds (0..N).
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// Environment steps per seed.
        #[arg(long, default_value_t = 50_000)]
        steps: u64,
        /// Folder for the runs and the report.
        #[arg(long, default_value = "runs/bench-cartpole")]
        out: PathBuf,
    },
}

#[derive(Debug, Serialize)]
struct Report {
    runs: Vec<Summary>,
    solved: usize,
    seeds: usize,
    median_wall_seconds_to_solve: Option<f64>,
    median_steps_to_solve: Option<u64>,
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> Option<T> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len() / 2).copied()
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let Bench::Cartpole { seeds, steps, out } = &args.which;
    let mut runs = Vec::new();
    for seed in 0..*seeds {
        let args = TrainArgs {
            env: "cartpole".into(),
            algo: Algo::Dqn,
            seed: Some(seed),
            steps: Some(*steps),
            config: None,
            out: out.join(format!("seed-{seed}")),
            resume: None,
            eval_every: 2_500,
            eval_episodes: 10,
            final_eval_episodes: 100,
            no_early_stop: false,
            init_from: None,
            physics: Default::default(),
        };
        let Some(summary) = train(&args)? else { anyhow::bail!("interrupted") };
        eprintln!(
            "seed {seed}: solved at {:?}, greedy mean {:.1}, {:.1} s",
            summary.first_solved_step, summary.eval_mean_return, summary.wall_seconds
        );
        runs.push(summary);
    }
    let solved: Vec<&Summary> = runs.iter().filter(|r| r.solved && r.first_solved_step.is_some()).collect();
    let report = Report {
        solved: solved.len(),
        seeds: runs.len(),
        median_wall_seconds_to_solve: median(solved.iter().map(|r| r.wall_seconds).collect()),
        median_steps_to_solve: median(solved.iter().filter_map(|r| r.first_solved_step).collect()),
        runs,
    };

    let mut table = String::from(
        "| seed | steps to first eval ≥ 475 | greedy mean (100 ep.) | wall s | updates/s | env steps/s |\n|---|---|---|---|---|---|\n",
    );
    for r in &report.runs {
        let solved_at = r.first_solved_step.map_or("not solved".to_owned(), |s| s.to_string());
        writeln!(
            table,
            "| {} | {} | {:.1} ± {:.1} | {:.2} | {:.0} | {:.0} |",
            r.seed,
            solved_at,
            r.eval_mean_return,
            r.eval_std_return,
            r.wall_seconds,
            r.updates_per_second,
            r.env_steps_per_second
        )?;
    }
    writeln!(
        table,
        "\n{} of {} seeds solved (greedy mean ≥ 475 over 100 episodes); median to solve: {} steps, {} s.",
        report.solved,
        report.seeds,
        report.median_steps_to_solve.map_or("-".into(), |s| s.to_string()),
        report.median_wall_seconds_to_solve.map_or("-".into(), |s| format!("{s:.2}")),
    )?;
    print!("{table}");
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    fs::write(out.join("report.md"), &table).with_context(|| format!("writing {}", out.join("report.md").display()))?;
    fs::write(out.join("report.json"), serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.join("report.json").display()))?;
    Ok(())
}
