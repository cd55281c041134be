//! `cargo xtask eval`: greedy evaluation of a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rlhf_algo::evaluate;
use rlhf_env::render::{DEFAULT_SIZE, save_gif};
use rlhf_env::{BitFlipping, CartPole, Env, EnvId, FourRooms};
use rlhf_model::backend::{CpuBackend, cpu_device};
use rlhf_model::checkpoint::{self, CheckpointMeta, Expectation};
use serde::Serialize;

use crate::task::Task;

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
    let env_id: EnvId = meta.env_id.parse()?;
    anyhow::ensure!(args.gif.is_none() || env_id == EnvId::CartPoleV1, "--gif records CartPole only, not {env_id}");
    match env_id {
        EnvId::CartPoleV1 => eval_on(args, CartPole::v1()),
        EnvId::BitFlipping { n_bits } => eval_on(args, BitFlipping::new(n_bits)?),
        EnvId::FourRooms { size } => eval_on(args, FourRooms::new(size)?),
        other => anyhow::bail!("eval does not know {other}"),
    }
}

/// Records one greedy CartPole episode as a GIF.
trait Recordable: Task {
    fn record(&mut self, _act: &mut dyn FnMut(&Self::Obs) -> usize, _args: &EvalArgs) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Recordable for rlhf_env::TimeLimit<CartPole> {
    fn record(&mut self, act: &mut dyn FnMut(&[f32; 4]) -> usize, args: &EvalArgs) -> anyhow::Result<()> {
        let Some(path) = &args.gif else { return Ok(()) };
        let (mut obs, ()) = self.reset(Some(args.seed));
        let mut scenes = vec![self.inner().scene()];
        loop {
            let step = self.step(act(&obs))?;
            scenes.push(self.inner().scene());
            if step.done() {
                break;
            }
            obs = step.obs;
        }
        save_gif(&scenes, path, DEFAULT_SIZE, 20).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{} frames written to {}", scenes.len(), path.display());
        Ok(())
    }
}

impl Recordable for BitFlipping {}
impl Recordable for FourRooms {}

fn eval_on<E: Recordable>(args: &EvalArgs, mut env: E) -> anyhow::Result<()> {
    let expected =
        Expectation { env_id: env.id(), obs_dim: env.network_input_dim(), n_actions: env.action_space().n() };
    let (network, meta): (_, CheckpointMeta) =
        checkpoint::load::<CpuBackend>(&args.checkpoint, &expected, &cpu_device())?;
    let mut policy = network.to_host()?;
    let mut input = Vec::new();
    // Sizes were checked against the environment when loading.
    let mut act = |obs: &E::Obs| {
        E::network_input(obs, &mut input);
        policy.greedy_action(&input).unwrap_or(0)
    };
    env.record(&mut act, args)?;
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
