//! `cargo xtask train`: train an agent and write a run folder.
//!
//! The run folder holds `config.json` (everything needed to repeat the run),
//! `metrics.csv` (one row per event: episode ends, training bursts,
//! evaluations), `summary.json`, and two checkpoints: `best/` (the network
//! of the best periodic evaluation, as Stable-Baselines3's `EvalCallback`
//! keeps) and `last/`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rlhf_algo::dqn::{Dqn, DqnConfig, EvalSchedule, TrainEvent};
use rlhf_env::{CartPole, Env, EnvId};
use rlhf_model::backend::{AutodiffCpu, CPU_BACKEND_NAME, cpu_device};
use rlhf_model::checkpoint::{self, CheckpointInfo};
use serde::Serialize;

/// A mean greedy return at or above this over the evaluation episodes solves CartPole-v1.
const CARTPOLE_SOLVED: f64 = 475.0;

/// Arguments of `cargo xtask train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Environment id.
    #[arg(long, default_value = "cartpole")]
    env: String,
    /// Seed of the agent, the training environment and (offset) the evaluations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Environment steps to train for.
    #[arg(long, default_value_t = 50_000)]
    steps: u64,
    /// Run folder (created; an existing folder's files are replaced).
    #[arg(long, default_value = "runs/dqn-cartpole")]
    out: PathBuf,
    /// Environment steps between greedy evaluations.
    #[arg(long, default_value_t = 2_500)]
    eval_every: u64,
    /// Episodes per periodic evaluation.
    #[arg(long, default_value_t = 10)]
    eval_episodes: usize,
    /// Episodes of the final evaluation.
    #[arg(long, default_value_t = 100)]
    final_eval_episodes: usize,
    /// Keep training after an evaluation reaches the solved threshold.
    #[arg(long)]
    no_early_stop: bool,
}

/// What `summary.json` holds.
#[derive(Debug, Serialize)]
pub struct Summary {
    env: String,
    algo: &'static str,
    backend: &'static str,
    seed: u64,
    total_steps: u64,
    gradient_updates: u64,
    wall_seconds: f64,
    env_steps_per_second: f64,
    updates_per_second: f64,
    eval_mean_return: f64,
    eval_std_return: f64,
    eval_episodes: usize,
    solved: bool,
    first_solved_step: Option<u64>,
}

pub fn train(args: &TrainArgs) -> anyhow::Result<Summary> {
    let env_id: EnvId = args.env.parse()?;
    anyhow::ensure!(env_id == EnvId::CartPoleV1, "train supports CartPole-v1 so far, not {env_id}");
    let config = DqnConfig { seed: args.seed, total_timesteps: args.steps, ..DqnConfig::default() };
    fs::create_dir_all(&args.out).with_context(|| format!("creating run folder {}", args.out.display()))?;
    write_atomically(&args.out.join("config.json"), serde_json::to_string_pretty(&config)?.as_bytes())?;

    let mut env = CartPole::v1();
    let mut eval_env = CartPole::v1();
    let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device())?;
    let eval_seed = args.seed.wrapping_add(1_000_000);

    let progress = ProgressBar::new(args.steps).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut metrics =
        String::from("step,episode_return,episode_length,epsilon,loss,mean_q,eval_mean_return,wall_seconds\n");
    let start = Instant::now();
    let mut first_solved_step = None;
    let mut best_eval = f64::NEG_INFINITY;
    let mut pending_best = false;
    let mut recent_returns = std::collections::VecDeque::with_capacity(20);
    let mut run_result = Ok(());
    // Early stop: train in chunks between evaluations and stop after one that solves.
    let chunk = args.eval_every.max(1);
    let mut trained = 0;
    while trained < args.steps && (args.no_early_stop || first_solved_step.is_none()) {
        let steps = chunk.min(args.steps - trained);
        let eval = EvalSchedule { env: &mut eval_env, every: chunk, episodes: args.eval_episodes, seed: eval_seed };
        run_result = agent.learn(&mut env, steps, Some(eval), |event| {
            let wall = start.elapsed().as_secs_f64();
            match event {
                TrainEvent::Episode { step, episode_return, length, epsilon } => {
                    metrics.push_str(&format!("{step},{episode_return},{length},{epsilon:.4},,,,{wall:.3}\n"));
                    if recent_returns.len() == 20 {
                        recent_returns.pop_front();
                    }
                    recent_returns.push_back(*episode_return);
                    let mean = recent_returns.iter().sum::<f64>() / recent_returns.len() as f64;
                    progress.set_position(*step);
                    progress.set_message(format!("return(20) {mean:.1} eps {epsilon:.3}"));
                }
                TrainEvent::Train { step, loss, mean_q, .. } => {
                    metrics.push_str(&format!("{step},,,,{loss:.6},{mean_q:.4},,{wall:.3}\n"));
                }
                TrainEvent::Eval { step, report } => {
                    metrics.push_str(&format!("{step},,,,,,{:.2},{wall:.3}\n", report.mean_return));
                    tracing::info!(step, mean_return = report.mean_return, "evaluation");
                    if report.mean_return >= CARTPOLE_SOLVED && first_solved_step.is_none() {
                        first_solved_step = Some(*step);
                    }
                    if report.mean_return > best_eval {
                        best_eval = report.mean_return;
                        pending_best = true;
                    }
                }
            }
        });
        if run_result.is_err() {
            break;
        }
        trained += steps;
        // Evaluations end each chunk, so the network now is the one just evaluated.
        if std::mem::take(&mut pending_best) {
            save_checkpoint(&agent, &args.out.join("best"), env.id())?;
        }
    }
    progress.finish_and_clear();
    let wall_seconds = start.elapsed().as_secs_f64();
    write_atomically(&args.out.join("metrics.csv"), metrics.as_bytes())?;
    run_result?;

    save_checkpoint(&agent, &args.out.join("last"), env.id())?;
    let report = agent.evaluate(&mut eval_env, args.final_eval_episodes, eval_seed.wrapping_add(u64::MAX / 2))?;
    let summary = Summary {
        env: env_id.name().to_owned(),
        algo: "dqn",
        backend: CPU_BACKEND_NAME,
        seed: args.seed,
        total_steps: agent.num_timesteps(),
        gradient_updates: agent.gradient_updates(),
        wall_seconds,
        env_steps_per_second: agent.num_timesteps() as f64 / wall_seconds,
        updates_per_second: agent.gradient_updates() as f64 / wall_seconds,
        eval_mean_return: report.mean_return,
        eval_std_return: report.std_return,
        eval_episodes: report.returns.len(),
        solved: report.mean_return >= CARTPOLE_SOLVED,
        first_solved_step,
    };
    write_atomically(&args.out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

fn save_checkpoint(agent: &Dqn<AutodiffCpu>, dir: &Path, env_id: &str) -> anyhow::Result<()> {
    let info = CheckpointInfo {
        env_id: env_id.to_owned(),
        step: agent.num_timesteps(),
        backend: CPU_BACKEND_NAME.to_owned(),
        run_config: serde_json::to_value(agent.config())?,
    };
    checkpoint::save(dir, agent.online(), agent.network_config(), info)?;
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
