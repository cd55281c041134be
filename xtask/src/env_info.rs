//! `env-info` and `check-env`: look at an environment before training on it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rlhf_algo::{Policy, RandomPolicy};
use rlhf_env::render::{DEFAULT_SIZE, save_gif, save_png};
use rlhf_env::{CartPole, Env, EnvId};

/// Arguments of `cargo xtask env-info`.
#[derive(Debug, Args)]
pub struct EnvInfoArgs {
    /// Environment id, e.g. `cartpole` or `CartPole-v1`.
    env: String,
    /// Seed of the sample episode (environment and random policy).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the sample episode as an animated GIF here.
    #[arg(long)]
    gif: Option<PathBuf>,
    /// Write the first frame of the sample episode as a PNG here.
    #[arg(long)]
    png: Option<PathBuf>,
}

/// Arguments of `cargo xtask check-env`.
#[derive(Debug, Args)]
pub struct CheckEnvArgs {
    /// Environment id, e.g. `cartpole`.
    env: String,
    /// Seed of the check.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Episodes to play.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
}

pub fn env_info(args: &EnvInfoArgs) -> anyhow::Result<()> {
    match args.env.parse::<EnvId>()? {
        EnvId::CartPoleV1 => cartpole_info(args),
        other => anyhow::bail!("env-info does not know how to show {other} yet"),
    }
}

pub fn check_env(args: &CheckEnvArgs) -> anyhow::Result<()> {
    let report = match args.env.parse::<EnvId>()? {
        EnvId::CartPoleV1 => rlhf_env::check_env(&mut CartPole::v1(), args.seed, args.episodes, 10_000)?,
        other => anyhow::bail!("check-env does not know {other} yet"),
    };
    println!("{}: ok ({report})", args.env);
    Ok(())
}

fn cartpole_info(args: &EnvInfoArgs) -> anyhow::Result<()> {
    // Write errors (a closed pipe, e.g. `| head`) end the command instead of panicking.
    let mut out = std::io::stdout().lock();
    let mut env = CartPole::v1();
    writeln!(out, "{}", env.id())?;
    writeln!(out, "  observation space: {}  ([x, x_dot, theta, theta_dot])", env.observation_space())?;
    writeln!(out, "  action space:      {}  (0 = push left, 1 = push right)", env.action_space())?;
    writeln!(out, "  max episode steps: {}", env.max_episode_steps())?;
    writeln!(out)?;
    writeln!(out, "Sample episode, random policy, seed {}:", args.seed)?;

    let mut policy = RandomPolicy::new(*env.action_space(), args.seed);
    let (mut obs, ()) = env.reset(Some(args.seed));
    let mut scenes = vec![env.inner().scene()];
    write!(out, "{}", env.inner().render_ascii())?;
    writeln!(
        out,
        "{:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "step", "action", "x", "x_dot", "theta", "theta_dot", "reward"
    )?;
    let mut total = 0.0;
    let mut steps = 0;
    let end = loop {
        let action = policy.act(&obs);
        let step = env.step(action)?;
        steps += 1;
        total += step.reward;
        scenes.push(env.inner().scene());
        let [x, x_dot, theta, theta_dot] = step.obs;
        writeln!(
            out,
            "{steps:>5} {action:>6} {x:>9.4} {x_dot:>9.4} {theta:>9.4} {theta_dot:>9.4} {:>6.1}",
            step.reward
        )?;
        if step.done() {
            break if step.terminated { "terminated" } else { "truncated" };
        }
        obs = step.obs;
    };
    write!(out, "{}", env.inner().render_ascii())?;
    writeln!(out, "Episode {end} after {steps} steps, return {total}.")?;

    if let Some(path) = &args.png {
        save_png(&scenes[0], path, DEFAULT_SIZE).with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "First frame written to {}", path.display())?;
    }
    if let Some(path) = &args.gif {
        // tau = 0.02 s per step: 20 ms a frame plays the episode in real time.
        save_gif(&scenes, path, DEFAULT_SIZE, 20).with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "{} frames written to {}", scenes.len(), path.display())?;
    }
    Ok(())
}
