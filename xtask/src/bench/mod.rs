//! `cargo xtask bench`: learning benchmarks with fixed seeds.
//!
//! Every table reports results over seeds as an interquartile mean with its
//! 95% bootstrap interval (`rlhf_algo::stats`), and the number of seeds.
//!
//! `bench cartpole --seeds N` trains DQN with the default config on seeds
//! `0..N` (each its own run folder under `runs/bench-cartpole/`), then
//! prints and writes (`runs/bench-cartpole/report.{json,md}`, `curves.png`)
//! a table: environment steps to the first 10-episode evaluation with mean
//! ≥ 475, the kept model's greedy mean over 100 fresh episodes, wall seconds
//! and gradient updates per second; with `--peers`, Stable-Baselines3 on the
//! same seeds beside it (`peers.rs`).
//!
//! `bench finetune` compares fine-tuning a pretrained CartPole network with
//! training from scratch on a longer pole.
//!
//! `bench her` reproduces figure 1 of the hindsight paper: greedy success
//! rate (100 episodes) on bit flipping against the number of bits, DQN with
//! and without hindsight replay, same environment-step budget for both, and
//! the four-rooms grid the same way (`runs/bench-her/report.{json,md,png}`,
//! `curves.png`, `profiles.png`).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use rlhf_algo::callbacks::{MetricsRow, read_metrics};
use rlhf_algo::dqn::BIT_FLIPPING_LARGE_N;
use rlhf_algo::replay::HerConfig;
use rlhf_algo::stats::{self, Estimate, OverSeeds};
use rlhf_bench::table::{estimate_cell, seeds_cell};
use rlhf_env::{CartPoleConfig, EnvId};
use serde::Serialize;

mod memory;
mod peers;
mod report;
mod scale;
mod serve;

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
        /// Stable-Baselines3 beside it (same seeds, budget and evaluation).
        #[command(flatten)]
        peers: peers::PeerArgs,
    },
    /// Fine-tuning: CartPole with a pole twice as long, from scratch and
    /// from a network pretrained on the standard pole, over seeds.
    Finetune(FinetuneBench),
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
    /// The HTTP server under load: predictions and feedback from concurrent
    /// clients, latency percentiles, acknowledged feedback against the store.
    Serve(serve::ServeBench),
    /// One case of `bench memory`, in this process (run by `bench memory`).
    #[command(hide = true)]
    MemoryProbe(memory::MemoryProbe),
}

/// Arguments of `bench finetune`.
#[derive(Debug, Args)]
struct FinetuneBench {
    /// Seeds of the runs on the new task, each from scratch and fine-tuned (0..N).
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Environment steps per run on the new task.
    #[arg(long, default_value_t = 50_000)]
    steps: u64,
    /// Seed of the pretraining run on the standard pole (default config).
    #[arg(long, default_value_t = 100)]
    pretrain_seed: u64,
    /// Half the pole's length (m) of the new task (Gymnasium's `length`, 0.5 standard).
    #[arg(long, default_value_t = 1.0)]
    length: f64,
    /// Folder for the runs and the report.
    #[arg(long, default_value = "runs/bench-finetune")]
    out: PathBuf,
}

/// `bench her`'s budget per bit below [`BIT_FLIPPING_LARGE_N`] bits.
const HER_STEPS_PER_BIT: u64 = 1_500;

/// `bench her`'s seeds on `n_bits` bits: enough for an interval up to 30
/// bits, fewer above, where one run takes up to millions of steps.
fn default_her_seeds(n_bits: usize) -> u64 {
    if n_bits <= 30 { 5 } else { 3 }
}

/// Arguments of `bench her`.
#[derive(Debug, Args)]
struct HerBench {
    /// Bit counts to train on.
    #[arg(long, value_delimiter = ',', default_value = "5,10,15,20,30,40,50")]
    bits: Vec<usize>,
    /// Seeds per setting (0..N) [default: 5 up to 30 bits and on grids, 3 above].
    #[arg(long)]
    seeds: Option<u64>,
    /// Environment-step budget per run on n bits: this many per bit (the
    /// same with and without HER; runs stop early once solved).
    #[arg(long, default_value_t = HER_STEPS_PER_BIT)]
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
    /// Stable-Baselines3 + HER beside ours on the largest bit count up to
    /// 30 (same budget and seeds).
    #[command(flatten)]
    peers: peers::PeerArgs,
}

/// DQN runs of one configuration on CartPole over seeds, as the reports keep them.
#[derive(Debug, Serialize)]
struct CartpoleReport {
    /// Environment steps per run.
    budget: u64,
    seeds: usize,
    solved: usize,
    /// Environment steps to the first 10-episode evaluation with mean ≥ 475;
    /// an unsolved seed counts the whole budget (so the IQM is then a lower bound).
    steps_to_solve: OverSeeds,
    /// Wall seconds until the run stopped: solved and confirmed, or the whole budget.
    seconds_to_solve: OverSeeds,
    /// Greedy mean return of the kept model over 100 fresh episodes.
    final_return: OverSeeds,
    /// The evaluations' mean return against environment steps, IQM over seeds.
    curve: Vec<(u64, Estimate)>,
    runs: Vec<Summary>,
    /// Stable-Baselines3's runs beside ours (`--peers`).
    sb3: Option<serde_json::Value>,
}

impl CartpoleReport {
    /// The statistics of `runs` (their folders hold their `metrics.csv`).
    fn new(budget: u64, runs: SeedRuns, eval_every: u64) -> anyhow::Result<Self> {
        let steps = steps_to_solve(runs.iter().map(|(r, _)| r), budget);
        let seconds: Vec<f64> = runs.iter().map(|(r, _)| r.wall_seconds).collect();
        let returns: Vec<f64> = runs.iter().map(|(r, _)| r.eval_mean_return).collect();
        let curves = runs
            .iter()
            .map(|(_, dir)| evaluations(dir, |row| row.eval_mean_return))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            budget,
            seeds: runs.len(),
            solved: runs.iter().filter(|(r, _)| r.solved && r.first_solved_step.is_some()).count(),
            steps_to_solve: OverSeeds::new(&steps),
            seconds_to_solve: OverSeeds::new(&seconds),
            final_return: OverSeeds::new(&returns),
            curve: stats::curve_interval(&curves, &evaluation_grid(eval_every, budget)),
            runs: runs.into_iter().map(|(r, _)| r).collect(),
            sb3: None,
        })
    }

    /// The row of the summary table: seeds, solved, and the three IQMs.
    fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {} | {} | {} | {} | {} |",
            self.seeds,
            self.solved,
            seeds_cell(&self.steps_to_solve, 0),
            seeds_cell(&self.seconds_to_solve, 2),
            seeds_cell(&self.final_return, 1)
        )
    }
}

/// The header of [`CartpoleReport::row`]'s table.
const CARTPOLE_SUMMARY_HEADER: &str = "| runs | seeds | solved | steps to first eval ≥ 475 | wall s to stop | greedy mean (100 ep.) |\n|---|---|---|---|---|---|\n";

/// What every table of results over seeds says under it.
pub(crate) fn intervals_note() -> String {
    format!(
        "Cells over seeds: interquartile mean [{:.0}% percentile bootstrap interval, {} resamples].",
        100.0 * stats::REPORT_CONFIDENCE,
        stats::REPORT_RESAMPLES
    )
}

/// Each run's environment steps to its first solving evaluation; an
/// unsolved run counts the whole `budget`.
fn steps_to_solve<'a>(runs: impl IntoIterator<Item = &'a Summary>, budget: u64) -> Vec<f64> {
    runs.into_iter().map(|r| r.first_solved_step.unwrap_or(budget) as f64).collect()
}

/// The evaluation points of a run of `budget` steps evaluated every `every`.
fn evaluation_grid(every: u64, budget: u64) -> Vec<u64> {
    (1..=budget / every.max(1)).map(|k| k * every).collect()
}

/// `(step, value)` of every evaluation row of the run in `dir` (`metrics.csv`).
fn evaluations(dir: &Path, value: fn(&MetricsRow) -> Option<f64>) -> anyhow::Result<Vec<(u64, f64)>> {
    Ok(read_metrics(&dir.join("metrics.csv"))?.iter().filter_map(|row| Some((row.step, value(row)?))).collect())
}

/// Points of a curve for [`rlhf_bench::plot_bands`].
pub(crate) fn band_points(curve: &[(u64, Estimate)]) -> Vec<(f64, Estimate)> {
    curve.iter().map(|&(x, e)| (x as f64, e)).collect()
}

/// The last line a child process printed, parsed as JSON; its stderr's last
/// line in the error when it failed.
pub(crate) fn last_json_line<T: serde::de::DeserializeOwned>(
    output: &std::process::Output,
    what: &str,
) -> anyhow::Result<T> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(output.status.success(), "{what} failed: {}", stderr.lines().last().unwrap_or_default());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().with_context(|| format!("{what} printed nothing"))?;
    serde_json::from_str(last).with_context(|| format!("parsing the output of {what}: {last:?}"))
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let Some(which) = &args.which else { return report::bench_report(&args.report) };
    match which {
        Bench::Cartpole { seeds, steps, out, n_envs, n_steps, config, peers } => {
            let overrides = ConfigOverrides {
                file: config.clone(),
                n_envs: Some(*n_envs),
                n_steps: Some(*n_steps),
                ..Default::default()
            };
            bench_cartpole(*seeds, *steps, &overrides, out, peers)
        }
        Bench::Finetune(finetune) => bench_finetune(finetune),
        Bench::Her(her) => bench_her(her),
        Bench::Feedback(feedback) => crate::assistant::bench_feedback(feedback),
        Bench::Scale(scale) => scale::bench_scale(scale).map(drop),
        Bench::Memory(memory) => memory::bench_memory(memory).map(drop),
        Bench::Serve(serve) => serve::bench_serve(serve).map(drop),
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

/// Trains `runs` one after the other, printing each seed's result.
fn train_seeds(runs: &[NewRun]) -> anyhow::Result<SeedRuns> {
    runs.iter()
        .map(|run| {
            let Some(summary) = run.train()? else { anyhow::bail!("interrupted") };
            eprintln!(
                "seed {}: solved at {:?}, greedy mean {:.1}, {:.1} s",
                summary.seed, summary.first_solved_step, summary.eval_mean_return, summary.wall_seconds
            );
            Ok((summary, run.out.clone()))
        })
        .collect()
}

/// The CartPole runs of seeds `0..seeds` under `out/seed-K`, with `overrides`.
fn cartpole_runs(seeds: u64, steps: u64, overrides: &ConfigOverrides, out: &Path) -> Vec<NewRun> {
    (0..seeds)
        .map(|seed| {
            let run = bench_run(EnvId::CartPoleV1, None, seed, steps, (2_500, 10), out.join(format!("seed-{seed}")));
            NewRun { config: ConfigOverrides { seed: Some(seed), steps: Some(steps), ..overrides.clone() }, ..run }
        })
        .collect()
}

fn bench_cartpole(
    seeds: u64,
    steps: u64,
    overrides: &ConfigOverrides,
    out: &Path,
    peers: &peers::PeerArgs,
) -> anyhow::Result<()> {
    let runs = cartpole_runs(seeds, steps, overrides, out);
    let mut report = CartpoleReport::new(steps, train_seeds(&runs)?, 2_500)?;
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
    write!(table, "\n{CARTPOLE_SUMMARY_HEADER}")?;
    writeln!(table, "{}", report.row(&format!("{} seeds, {} steps", report.seeds, steps)))?;
    writeln!(
        table,
        "\n{note} Solved: greedy mean ≥ 475 over 10 episodes, confirmed over 100; an unsolved seed counts its whole budget.",
        note = intervals_note()
    )?;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if peers.peers {
        let (comparison, sb3) = peers::cartpole(&peers::python(peers)?, &report, out)?;
        table.push_str(&comparison);
        report.sb3 = Some(sb3);
    } else {
        plot_cartpole_curves(out, report.seeds, &[("DQN", &band_points(&report.curve))])?;
    }
    print!("{table}");
    write_report(out, &table, &report)
}

/// `curves.png` in `out`: CartPole learning curves over seeds.
fn plot_cartpole_curves(out: &Path, seeds: usize, bands: &[rlhf_bench::Band<'_>]) -> anyhow::Result<()> {
    rlhf_bench::plot_bands(
        &out.join("curves.png"),
        &format!("CartPole-v1: greedy evaluations, IQM and 95% interval over {seeds} seeds"),
        ("environment steps", "mean return (10 greedy episodes)"),
        0.0..520.0,
        bands,
    )?;
    Ok(())
}

/// Fine-tuning against training from scratch on a changed CartPole, with
/// the same default config and seeds; the pretrained network is the best
/// model of one run on the standard pole.
fn bench_finetune(args: &FinetuneBench) -> anyhow::Result<()> {
    let pretrained = args.out.join("pretrain");
    let pretrain = bench_run(EnvId::CartPoleV1, None, args.pretrain_seed, 50_000, (2_500, 10), pretrained.clone());
    let Some(summary) = pretrain.train()? else { anyhow::bail!("interrupted") };
    anyhow::ensure!(summary.solved, "the pretraining run (seed {}) did not solve CartPole-v1", args.pretrain_seed);
    let cartpole = CartPoleConfig { length: args.length, ..CartPoleConfig::default() };
    let runs = |name: &str, init_from: Option<PathBuf>| -> Vec<NewRun> {
        cartpole_runs(args.seeds, args.steps, &ConfigOverrides::default(), &args.out.join(name))
            .into_iter()
            .map(|run| NewRun { cartpole, init_from: init_from.clone(), ..run })
            .collect()
    };
    let scratch = CartpoleReport::new(args.steps, train_seeds(&runs("scratch", None))?, 2_500)?;
    let finetuned =
        CartpoleReport::new(args.steps, train_seeds(&runs("finetuned", Some(pretrained.join("best"))))?, 2_500)?;
    let steps = |r: &CartpoleReport| -> Vec<f64> { steps_to_solve(&r.runs, r.budget).iter().map(|s| -s).collect() };
    let improvement = stats::probability_of_improvement_interval(&steps(&finetuned), &steps(&scratch));
    let mut table = format!(
        "Pretrained: seed {} on the standard pole (solved at {} steps). New task: `length` {} (the pole's half-length, 0.5 standard), {} steps per run.\n\n{CARTPOLE_SUMMARY_HEADER}",
        args.pretrain_seed,
        summary.first_solved_step.map_or("-".into(), |s| s.to_string()),
        args.length,
        args.steps
    );
    writeln!(table, "{}", scratch.row("from scratch"))?;
    writeln!(table, "{}", finetuned.row("fine-tuned from the pretrained network"))?;
    writeln!(
        table,
        "\nP(a fine-tuned run solves in fewer steps than one from scratch): {}.\n\n{note} Same default config in both rows (no frozen layers, same learning rate); an unsolved seed counts its whole budget.",
        estimate_cell(improvement, 2),
        note = intervals_note()
    )?;
    print!("{table}");
    #[derive(Serialize)]
    struct FinetuneReport<'a> {
        pretrain: &'a Summary,
        length: f64,
        scratch: &'a CartpoleReport,
        finetuned: &'a CartpoleReport,
        improvement: Option<Estimate>,
    }
    let report = FinetuneReport {
        pretrain: &summary,
        length: args.length,
        scratch: &scratch,
        finetuned: &finetuned,
        improvement,
    };
    write_report(&args.out, &table, &report)?;
    rlhf_bench::plot_bands(
        &args.out.join("curve.png"),
        &format!("CartPole-v1 with length {}: greedy evaluations over {} seeds", args.length, args.seeds),
        ("environment steps", "greedy mean return (10 episodes), IQM"),
        0.0..520.0,
        &[("fine-tuned", &band_points(&finetuned.curve)), ("from scratch", &band_points(&scratch.curve))],
    )?;
    Ok(())
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
    /// Greedy success rate of the kept model (100 episodes).
    success: OverSeeds,
    /// Environment steps to the first evaluation with success ≥ 0.99;
    /// unsolved seeds count the whole budget.
    steps_to_solve: OverSeeds,
    /// Wall seconds to solve, or of the whole run.
    seconds: OverSeeds,
    /// The probability that a run of this row beats one of plain DQN on the
    /// same task in success (HER rows beside a plain row).
    improvement_over_plain: Option<Estimate>,
    /// Evaluation success rate against environment steps, IQM over seeds.
    curve: Vec<(u64, Estimate)>,
    runs: Vec<Summary>,
}

impl HerRow {
    fn new(env: String, her: Option<String>, budget: u64, runs: SeedRuns) -> anyhow::Result<Self> {
        let column = |value: fn(&Summary) -> f64| runs.iter().map(|(r, _)| value(r)).collect::<Vec<f64>>();
        let curves = runs
            .iter()
            .map(|(_, dir)| evaluations(dir, |row| row.eval_success_rate))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            success: OverSeeds::new(&column(|r| r.eval_success_rate.unwrap_or(0.0))),
            steps_to_solve: OverSeeds::new(&steps_to_solve(runs.iter().map(|(r, _)| r), budget)),
            seconds: OverSeeds::new(&column(|r| r.wall_seconds)),
            improvement_over_plain: None,
            curve: stats::curve_interval(&curves, &evaluation_grid(her_eval_every(budget), budget)),
            env,
            her,
            budget,
            runs: runs.into_iter().map(|(r, _)| r).collect(),
        })
    }

    fn successes(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.eval_success_rate.unwrap_or(0.0)).collect()
    }

    fn method(&self) -> String {
        self.her.as_deref().map_or("plain".to_owned(), |h| format!("HER {h}"))
    }
}

/// The summaries of runs over seeds, with their folders.
type SeedRuns = Vec<(Summary, PathBuf)>;

/// A curve with its band, labelled.
type NamedBand = (String, Vec<(f64, Estimate)>);

/// 50 evaluations per run, on 100 episodes: success ≥ 0.99 must be measured finely.
fn her_eval_every(budget: u64) -> u64 {
    (budget / 50).max(100)
}

fn bench_her(args: &HerBench) -> anyhow::Result<()> {
    let tasks = args
        .bits
        .iter()
        .map(|&n_bits| {
            let per_bit = if n_bits >= BIT_FLIPPING_LARGE_N { args.large_steps_per_bit } else { args.steps_per_bit };
            (EnvId::BitFlipping { n_bits }, per_bit * n_bits as u64, default_her_seeds(n_bits))
        })
        .chain(args.grids.iter().map(|&size| (EnvId::FourRooms { size }, args.grid_steps, 5)));
    let her: Option<HerConfig> = match args.her.as_str() {
        "none" => None,
        her => Some(her.parse()?),
    };
    // Every (task, method, seed) run, in report order.
    let mut plan = Vec::new();
    for (env, budget, default_seeds) in tasks {
        let methods = if args.her_only { vec![her] } else { vec![her, None] };
        for her in methods {
            for seed in 0..args.seeds.unwrap_or(default_seeds) {
                let method = her.map_or("none".to_owned(), |h| h.to_string());
                let name = format!("{}-{}-seed-{seed}", env.name().replace(':', "-"), method.replace(':', "-"));
                let run = bench_run(env, her, seed, budget, (her_eval_every(budget), 100), args.out.join(name));
                let run = NewRun { config: ConfigOverrides { n_steps: Some(args.n_steps), ..run.config }, ..run };
                plan.push((env.name(), her.map(|h| h.to_string()), budget, run));
            }
        }
    }
    let summaries = run_all(plan.iter().map(|(.., run)| run).collect(), args.jobs)?;
    // Group the runs by (task, method), in plan order.
    let mut groups: Vec<(String, Option<String>, u64, SeedRuns)> = Vec::new();
    for ((env, her, budget, run), summary) in plan.into_iter().zip(summaries) {
        eprintln!(
            "{env} her {}: seed {}: success {:.2}, solved at {:?}, {:.1} s",
            her.as_deref().unwrap_or("none"),
            summary.seed,
            summary.eval_success_rate.unwrap_or(0.0),
            summary.first_solved_step,
            summary.wall_seconds
        );
        match groups.last_mut() {
            Some((e, h, _, runs)) if *e == env && *h == her => runs.push((summary, run.out)),
            _ => groups.push((env, her, budget, vec![(summary, run.out)])),
        }
    }
    let mut rows = groups
        .into_iter()
        .map(|(env, her, budget, runs)| HerRow::new(env, her, budget, runs))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for i in 0..rows.len() {
        let plain = rows.iter().find(|r| r.env == rows[i].env && r.her.is_none()).map(HerRow::successes);
        if let (Some(plain), Some(_)) = (plain, &rows[i].her) {
            rows[i].improvement_over_plain = stats::probability_of_improvement_interval(&rows[i].successes(), &plain);
        }
    }

    let mut table = String::from(
        "| task | budget (env steps) | replay | seeds | greedy success (100 ep.) | P(better than plain) | steps to success ≥ 0.99 | wall s (to solve, or whole run) | success per seed |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        let per_seed: Vec<String> = row.successes().iter().map(|s| format!("{s:.2}")).collect();
        writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.env,
            row.budget,
            row.method(),
            row.success.seeds,
            seeds_cell(&row.success, 2),
            estimate_cell(row.improvement_over_plain, 2),
            seeds_cell(&row.steps_to_solve, 0),
            seeds_cell(&row.seconds, 1),
            per_seed.join(", ")
        )?;
    }
    writeln!(
        table,
        "\n{note} Steps to success: an unsolved seed counts its whole budget. P(better than plain): the probability that a HER run's success beats a plain run's on the same task (ties count half), with its interval.",
        note = intervals_note()
    )?;
    let mut sb3 = None;
    if args.peers.peers {
        // The largest bit count up to 30 that has a HER row.
        let compared = rows
            .iter()
            .filter(|r| r.her.is_some())
            .filter_map(|r| Some((r.env.strip_prefix("bitflip:")?.parse::<usize>().ok()?, r)))
            .filter(|(bits, _)| *bits <= 30)
            .max_by_key(|(bits, _)| *bits);
        if let Some((bits, row)) = compared {
            let (comparison, runs) = peers::her(&peers::python(&args.peers)?, row, bits)?;
            table.push_str(&comparison);
            sb3 = Some(runs);
        }
    }
    print!("{table}");
    #[derive(Serialize)]
    struct HerReport<'a> {
        rows: &'a [HerRow],
        /// Stable-Baselines3 + HER's runs beside ours (`--peers`).
        sb3: Option<serde_json::Value>,
    }
    write_report(&args.out, &table, &HerReport { rows: &rows, sb3 })?;
    plot_her(args, &rows)
}

/// `report.png` (success against bits), `curves.png` (success against
/// steps) and `profiles.png` (share of runs above each success), one
/// curve per method, with 95% bands.
fn plot_her(args: &HerBench, rows: &[HerRow]) -> anyhow::Result<()> {
    let by_bits = |her: bool| -> Vec<(f64, Estimate)> {
        rows.iter()
            .filter(|r| r.env.starts_with("bitflip:") && r.her.is_some() == her)
            .filter_map(|r| Some((r.env.strip_prefix("bitflip:")?.parse::<f64>().ok()?, r.success.iqm?)))
            .collect()
    };
    let label = format!("DQN + HER ({})", args.her);
    rlhf_bench::plot_bands(
        &args.out.join("report.png"),
        "Bit flipping: greedy success after the same step budget",
        ("number of bits", "success rate (100 episodes), IQM over seeds"),
        0.0..1.05,
        &[(label.as_str(), &by_bits(true)), ("DQN", &by_bits(false))],
    )?;
    let taus: Vec<f64> = (0..=50).map(|i| f64::from(i) / 50.0).collect();
    let mut tasks: Vec<&str> = rows.iter().map(|r| r.env.as_str()).collect();
    tasks.dedup();
    let methods = |task: &'_ str| rows.iter().filter(|r| r.env == task).collect::<Vec<_>>();
    let curves: Vec<Vec<NamedBand>> =
        tasks.iter().map(|t| methods(t).iter().map(|r| (r.method(), band_points(&r.curve))).collect()).collect();
    let profiles: Vec<Vec<NamedBand>> = tasks
        .iter()
        .map(|t| {
            methods(t)
                .iter()
                .map(|r| {
                    let profile = stats::performance_profile_interval(&r.successes(), &taus);
                    (r.method(), taus.iter().copied().zip(profile).collect())
                })
                .collect()
        })
        .collect();
    for (file, title, axes, panels) in [
        (
            "curves.png",
            "Greedy success during training, IQM and 95% interval",
            ("environment steps", "success rate"),
            &curves,
        ),
        ("profiles.png", "Performance profiles: share of runs with success above τ", ("τ", "share of runs"), &profiles),
    ] {
        let bands: Vec<Vec<rlhf_bench::Band<'_>>> =
            panels.iter().map(|p| p.iter().map(|(l, pts)| (l.as_str(), pts.as_slice())).collect()).collect();
        let panels: Vec<rlhf_bench::Panel<'_>> = tasks.iter().zip(&bands).map(|(t, b)| (*t, b.as_slice())).collect();
        rlhf_bench::plot_band_panels(&args.out.join(file), title, axes, 0.0..1.05, 4, &panels)?;
    }
    Ok(())
}
