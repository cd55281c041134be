//! `cargo xtask eval`: greedy evaluation of a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rlhf_algo::evaluate;
use rlhf_env::render::{DEFAULT_SIZE, save_gif};
use rlhf_env::{CartPole, Env, EnvId};
use rlhf_model::backend::{CpuBackend, cpu_device};
use rlhf_model::checkpoint::{self, Expectation};
use serde::Serialize;

/// Arguments of `cargo xtask eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint directory (e.g. `runs/dqn-cartpole/best`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Greedy episodes to play.
    #[arg(long, default_value_t = 100)]
    episodes: usize,
    /// Seed of the first episode's reset.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Record the first episode as an animated GIF here.
    #[arg(long)]
    gif: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct EvalSummary {
    checkpoint: PathBuf,
    env: String,
    step: u64,
    episodes: usize,
    seed: u64,
    mean_return: f64,
    std_return: f64,
    min_return: f64,
    max_return: f64,
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let meta = checkpoint::read_meta(&args.checkpoint)?;
    let env_id: EnvId = meta.env_id.parse()?;
    anyhow::ensure!(env_id == EnvId::CartPoleV1, "eval supports CartPole-v1 so far, not {env_id}");
    let mut env = CartPole::v1();
    let expected = Expectation {
        env_id: env.id(),
        obs_dim: env.observation_space().flat_dim(),
        n_actions: env.action_space().n(),
    };
    let (network, meta) = checkpoint::load::<CpuBackend>(&args.checkpoint, &expected, &cpu_device())?;
    let mut policy = network.to_host()?;
    // Sizes were checked against the environment when loading.
    let mut act = |obs: &[f32; 4]| policy.greedy_action(obs).unwrap_or(0);

    if let Some(path) = &args.gif {
        let (mut obs, ()) = env.reset(Some(args.seed));
        let mut scenes = vec![env.inner().scene()];
        loop {
            let step = env.step(act(&obs))?;
            scenes.push(env.inner().scene());
            if step.done() {
                break;
            }
            obs = step.obs;
        }
        save_gif(&scenes, path, DEFAULT_SIZE, 20).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{} frames written to {}", scenes.len(), path.display());
    }

    let report = evaluate(&mut env, &mut act, args.episodes, args.seed)?;
    let summary = EvalSummary {
        checkpoint: args.checkpoint.clone(),
        env: meta.env_id,
        step: meta.step,
        episodes: report.returns.len(),
        seed: args.seed,
        mean_return: report.mean_return,
        std_return: report.std_return,
        min_return: report.returns.iter().copied().fold(f64::INFINITY, f64::min),
        max_return: report.returns.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "greedy return over {} episodes: {:.2} ± {:.2}",
        summary.episodes, summary.mean_return, summary.std_return
    )?;
    writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    Ok(())
}
