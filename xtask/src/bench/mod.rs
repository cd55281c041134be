//! `cargo xtask bench`: learning benchmarks with fixed seeds.
//!
//! `bench cartpole --seeds N` trains DQN with the default config on seeds
//! `0..N` (each its own run folder under `runs/bench-cartpole/`), then
//! prints and writes (`runs/bench-cartpole/report.{json,md}`) a table:
//! environment steps to the first 10-episode evaluation with mean ≥ 475,
//! the kept model's greedy mean over 100 fresh episodes, wall seconds and
//! gradient updates per second.
//!
//! `bench her` reproduces figure 1 of the hindsight paper: greedy success
//! rate (100 episodes) on bit flipping against the number of bits, DQN with
//! and without hindsight replay, same environment-step budget for both, and
//! the four-rooms grid the same way (`runs/bench-her/report.{json,md,png}`).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use rlhf_algo::dqn::BIT_FLIPPING_LARGE_N;
use rlhf_algo::replay::HerConfig;
use rlhf_env::EnvId;
use serde::Serialize;

mod memory;
mod report;
mod scale;

use crate::train::{ConfigOverrides, NewRun, Schedule, Summary};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// One benchmark; without it, all of them and one report.
    #[command(subcommand)]
    which: Option<Bench>,
    #[command(flatten)]
    report: report::ReportArgs,
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
        /// Environments stepped together (`n_envs`).
        #[arg(long, default_value_t = 1)]
        n_envs: usize,
        /// Steps of n-step returns (`n_steps`).
        #[arg(long, default_value_t = 1)]
        n_steps: usize,
        /// TOML file of `DqnConfig` fields over the default config.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Hindsight replay: bit flipping success against the number of bits,
    /// and the four-rooms grid, with and without HER.
    Her(HerBench),
    /// Learning a new intent domain from simulated user feedback, with and
    /// without relabeling corrections, at several feedback error rates.
    Feedback(crate::assistant::FeedbackBench),
    /// Throughput at scale: many environments, large batches, wide
    /// networks, on every backend.
    Scale(scale::ScaleBench),
    /// Peak resident memory: the default CartPole run and a 1,000,000-transition replay buffer.
    Memory(memory::MemoryBench),
    /// One case of `bench memory`, in this process (run by `bench memory`).
    #[command(hide = true)]
    MemoryProbe(memory::MemoryProbe),
}

/// Arguments of `bench her`.
#[derive(Debug, Args)]
struct HerBench {
    /// Bit counts to train on.
    #[arg(long, value_delimiter = ',', default_value = "5,10,15,20,30,40,50")]
    bits: Vec<usize>,
    /// Seeds per setting (0..N).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Environment-step budget per run on n bits: this many per bit (the
    /// same with and without HER; runs stop early once solved).
    #[arg(long, default_value_t = 1_500)]
    steps_per_bit: u64,
    /// The budget per bit from `BIT_FLIPPING_LARGE_N` (40) bits on, where
    /// the preset takes one gradient step per 16 environment steps.
    #[arg(long, default_value_t = 50_000)]
    large_steps_per_bit: u64,
    /// Relabeling of the HER runs.
    #[arg(long, default_value = "future:4")]
    her: String,
    /// Sides of four-rooms grids to train on too (none: `--grids` alone).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "11")]
    grids: Vec<usize>,
    /// Environment-step budget per grid run.
    #[arg(long, default_value_t = 30_000)]
    grid_steps: u64,
    /// Folder for the runs and the report.
    #[arg(long, default_value = "runs/bench-her")]
    out: PathBuf,
    /// Runs trained at the same time (each on one thread).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Steps of n-step returns (`n_steps`), computed under relabeled goals.
    #[arg(long, default_value_t = 1)]
    n_steps: usize,
    /// Only the HER runs (not plain DQN beside them).
    #[arg(long)]
    her_only: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    runs: Vec<Summary>,
    solved: usize,
    seeds: usize,
    median_wall_seconds_to_solve: Option<f64>,
    median_steps_to_solve: Option<u64>,
}

/// The last line a child process printed, parsed as JSON; its stderr's last
/// line in the error when it failed.
fn last_json_line<T: serde::de::DeserializeOwned>(output: &std::process::Output, what: &str) -> anyhow::Result<T> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(output.status.success(), "{what} failed: {}", stderr.lines().last().unwrap_or_default());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().with_context(|| format!("{what} printed nothing"))?;
    serde_json::from_str(last).with_context(|| format!("parsing the output of {what}: {last:?}"))
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> Option<T> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len() / 2).copied()
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let Some(which) = &args.which else { return report::bench_report(&args.report) };
    match which {
        Bench::Cartpole { seeds, steps, out, n_envs, n_steps, config } => {
            let overrides = ConfigOverrides {
                file: config.clone(),
                n_envs: Some(*n_envs),
                n_steps: Some(*n_steps),
                ..Default::default()
            };
            bench_cartpole(*seeds, *steps, &overrides, out)
        }
        Bench::Her(her) => bench_her(her),
        Bench::Feedback(feedback) => crate::assistant::bench_feedback(feedback),
        Bench::Scale(scale) => scale::bench_scale(scale).map(drop),
        Bench::Memory(memory) => memory::bench_memory(memory).map(drop),
        Bench::MemoryProbe(probe) => memory::probe(probe),
    }
}

/// A DQN training run of the benchmarks: default config, early stop, 100 final episodes.
fn bench_run(env: EnvId, her: Option<HerConfig>, seed: u64, steps: u64, eval: (u64, usize), out: PathBuf) -> NewRun {
    NewRun {
        config: ConfigOverrides {
            seed: Some(seed),
            steps: Some(steps),
            her: env.is_goal_env().then_some(her),
            ..ConfigOverrides::default()
        },
        schedule: Schedule { eval_every: eval.0, eval_episodes: eval.1, ..Schedule::default() },
        ..NewRun::new(env, out)
    }
}

fn bench_cartpole(seeds: u64, steps: u64, overrides: &ConfigOverrides, out: &Path) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for seed in 0..seeds {
        let run = bench_run(EnvId::CartPoleV1, None, seed, steps, (2_500, 10), out.join(format!("seed-{seed}")));
        let run =
            NewRun { config: ConfigOverrides { seed: Some(seed), steps: Some(steps), ..overrides.clone() }, ..run };
        let Some(summary) = run.train()? else { anyhow::bail!("interrupted") };
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
    write_report(out, &table, &report)
}

/// Trains every run, `jobs` at a time, and returns their summaries in order.
fn run_all(runs: Vec<&NewRun>, jobs: usize) -> anyhow::Result<Vec<Summary>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<anyhow::Result<Summary>>>> =
        runs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(run) = runs.get(i) else { break };
                    let result = run.train().and_then(|s| s.ok_or_else(|| anyhow::anyhow!("interrupted")));
                    let failed = result.is_err();
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                    if failed {
                        // Stop handing out work; the error is reported below.
                        next.store(runs.len(), std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))?
                .unwrap_or_else(|| Err(anyhow::anyhow!("not run: an earlier run failed")))
        })
        .collect()
}

fn write_report(out: &Path, table: &str, report: &impl Serialize) -> anyhow::Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    crate::train::write_atomically(&out.join("report.md"), table.as_bytes())?;
    crate::train::write_atomically(&out.join("report.json"), serde_json::to_string_pretty(report)?.as_bytes())
}

/// One row of the hindsight report: a task, a method, its seeds.
#[derive(Debug, Serialize)]
struct HerRow {
    env: String,
    her: Option<String>,
    budget: u64,
    mean_success: f64,
    runs: Vec<Summary>,
}

fn bench_her(args: &HerBench) -> anyhow::Result<()> {
    let tasks = args
        .bits
        .iter()
        .map(|&n_bits| {
            let per_bit = if n_bits >= BIT_FLIPPING_LARGE_N { args.large_steps_per_bit } else { args.steps_per_bit };
            (EnvId::BitFlipping { n_bits }, per_bit * n_bits as u64)
        })
        .chain(args.grids.iter().map(|&size| (EnvId::FourRooms { size }, args.grid_steps)));
    let her: Option<HerConfig> = match args.her.as_str() {
        "none" => None,
        her => Some(her.parse()?),
    };
    // Every (task, method, seed) run, in report order.
    let mut plan = Vec::new();
    for (env, budget) in tasks {
        let methods = if args.her_only { vec![her] } else { vec![her, None] };
        for her in methods {
            for seed in 0..args.seeds {
                let method = her.map_or("none".to_owned(), |h| h.to_string());
                let name = format!("{}-{}-seed-{seed}", env.name().replace(':', "-"), method.replace(':', "-"));
                // 50 evaluations per run, on 100 episodes: success ≥ 0.99 must be measured finely.
                let every = (budget / 50).max(100);
                let run = bench_run(env, her, seed, budget, (every, 100), args.out.join(name));
                let run = NewRun { config: ConfigOverrides { n_steps: Some(args.n_steps), ..run.config }, ..run };
                plan.push((env.name(), her.map(|h| h.to_string()), budget, run));
            }
        }
    }
    let summaries = run_all(plan.iter().map(|(.., run)| run).collect(), args.jobs)?;
    let mut rows: Vec<HerRow> = Vec::new();
    for ((env, her, budget, _), summary) in plan.into_iter().zip(summaries) {
        eprintln!(
            "{env} her {}: seed {}: success {:.2}, solved at {:?}, {:.1} s",
            her.as_deref().unwrap_or("none"),
            summary.seed,
            summary.eval_success_rate.unwrap_or(0.0),
            summary.first_solved_step,
            summary.wall_seconds
        );
        match rows.last_mut() {
            Some(row) if row.env == env && row.her == her => row.runs.push(summary),
            _ => rows.push(HerRow { env, her, budget, mean_success: 0.0, runs: vec![summary] }),
        }
    }
    for row in &mut rows {
        row.mean_success =
            row.runs.iter().map(|r| r.eval_success_rate.unwrap_or(0.0)).sum::<f64>() / row.runs.len().max(1) as f64;
    }

    let mut table = String::from(
        "| task | budget (env steps) | replay | success per seed | mean | steps to success ≥ 0.99 | wall s (to solve, or whole run) |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        let per_seed: Vec<String> =
            row.runs.iter().map(|r| format!("{:.2}", r.eval_success_rate.unwrap_or(0.0))).collect();
        let solved_at: Vec<String> =
            row.runs.iter().map(|r| r.first_solved_step.map_or("-".to_owned(), |s| s.to_string())).collect();
        let walls: Vec<String> = row.runs.iter().map(|r| format!("{:.1}", r.wall_seconds)).collect();
        writeln!(
            table,
            "| {} | {} | {} | {} | {:.2} | {} | {} |",
            row.env,
            row.budget,
            row.her.as_deref().map_or("plain".to_owned(), |h| format!("HER {h}")),
            per_seed.join(", "),
            row.mean_success,
            solved_at.join(", "),
            walls.join(", ")
        )?;
    }
    print!("{table}");
    write_report(&args.out, &table, &rows)?;

    let line = |her: bool| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.env.starts_with("bitflip:") && r.her.is_some() == her)
            .filter_map(|r| Some((r.env.strip_prefix("bitflip:")?.parse::<f64>().ok()?, r.mean_success)))
            .collect()
    };
    let (with, without) = (line(true), line(false));
    let label = format!("DQN + HER ({})", args.her);
    rlhf_bench::plot_lines(
        &args.out.join("report.png"),
        "Bit flipping: greedy success after the same step budget",
        ("number of bits", "success rate (100 episodes, mean of seeds)"),
        0.0..1.05,
        &[(label.as_str(), &with), ("DQN", &without)],
    )?;
    Ok(())
}
