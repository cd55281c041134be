//! `cargo xtask eval`: greedy evaluation of a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rlhf_algo::{GreedyPolicy, Policy, evaluate};
use rlhf_env::{CartPoleConfig, EnvId};
use rlhf_model::backend::{CpuBackend, cpu_device};
use rlhf_model::checkpoint::{self, CheckpointMeta, Expectation};
use serde::Serialize;

use crate::task::{Task, TaskJob, with_task};

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
    /// Record the first episode as an animated GIF here (CartPole).
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
    #[serde(skip_serializing_if = "Option::is_none")]
    success_rate: Option<f64>,
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let meta = checkpoint::read_meta(&args.checkpoint)?;
    let env: EnvId = meta.env_id.parse()?;
    // A checkpoint of a changed CartPole is evaluated on CartPole-v1's physics.
    with_task(env, &CartPoleConfig::default(), EvalJob { args })
}

struct EvalJob<'a> {
    args: &'a EvalArgs,
}

impl TaskJob for EvalJob<'_> {
    type Output = ();

    fn run<E: Task>(self, env: E) -> anyhow::Result<()> {
        eval_on(self.args, env)
    }
}

fn eval_on<E: Task>(args: &EvalArgs, mut env: E) -> anyhow::Result<()> {
    let expected =
        Expectation { env_id: env.id(), obs_dim: env.network_input_dim(), n_actions: env.action_space().n() };
    let (network, meta): (_, CheckpointMeta) =
        checkpoint::load::<CpuBackend>(&args.checkpoint, &expected, &cpu_device())?;
    // Sizes were checked against the environment when loading.
    let mut policy = GreedyPolicy::new(network.to_host()?);
    env.record(&mut |obs| policy.act(obs), args.seed, None, args.gif.as_deref())?;
    let report = evaluate(&mut env, &mut policy, args.episodes, args.seed)?;
    if let Some(e) = policy.take_error() {
        return Err(e.into());
    }
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
        success_rate: report.success_rate,
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "greedy return over {} episodes: {:.2} ± {:.2}{}",
        summary.episodes,
        summary.mean_return,
        summary.std_return,
        summary.success_rate.map_or(String::new(), |rate| format!(", success rate {rate:.3}"))
    )?;
    writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    Ok(())
}
