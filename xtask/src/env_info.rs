//! `env-info` and `check-env`: look at an environment before training on it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rlhf_algo::{Policy, RandomPolicy};
use rlhf_env::render::{DEFAULT_SIZE, save_gif, save_png};
use rlhf_env::{CartPole, CartPoleConfig, Env, EnvId, EpisodeOutcome};

use crate::task::{Task, TaskJob, with_task};

/// Arguments of `cargo xtask env-info`.
#[derive(Debug, Args)]
pub struct EnvInfoArgs {
    /// Environment id: `cartpole`, `bitflip:N` or `fourrooms:N`.
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
    /// Environment id: `cartpole`, `bitflip:N` or `fourrooms:N`.
    env: String,
    /// Seed of the check.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Episodes to play.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
}

pub fn env_info(args: &EnvInfoArgs) -> anyhow::Result<()> {
    let env: EnvId = args.env.parse()?;
    if env == EnvId::CartPoleV1 {
        return cartpole_info(args);
    }
    with_task(env, &CartPoleConfig::default(), InfoJob { args })
}

pub fn check_env(args: &CheckEnvArgs) -> anyhow::Result<()> {
    let report = with_task(args.env.parse()?, &CartPoleConfig::default(), CheckJob { args })?;
    println!("{}: ok ({report})", args.env);
    Ok(())
}

struct CheckJob<'a> {
    args: &'a CheckEnvArgs,
}

impl TaskJob for CheckJob<'_> {
    type Output = String;

    fn run<E: Task>(self, mut env: E) -> anyhow::Result<String> {
        env.check(self.args.seed, self.args.episodes)
    }
}

/// Spaces and a random episode of any registered environment.
struct InfoJob<'a> {
    args: &'a EnvInfoArgs,
}

impl TaskJob for InfoJob<'_> {
    type Output = ();

    fn run<E: Task>(self, mut env: E) -> anyhow::Result<()> {
        let args = self.args;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", env.id())?;
        writeln!(out, "  observation space: {}", env.observation_space())?;
        writeln!(out, "  action space:      {}", env.action_space())?;
        writeln!(out, "  configuration:     {}", env.describe())?;
        writeln!(out)?;
        writeln!(out, "Sample episode, random policy, seed {}:", args.seed)?;
        let mut policy = RandomPolicy::new(*env.action_space(), args.seed);
        let (mut obs, _) = env.reset(Some(args.seed));
        writeln!(out, "  start: {obs:?}")?;
        let (mut total, mut steps) = (0.0, 0);
        let end = loop {
            let action = policy.act(&obs);
            let step = env.step(action)?;
            steps += 1;
            total += step.reward;
            writeln!(out, "{steps:>5} action {action:>3} reward {:>6.2}  {:?}", step.reward, step.obs)?;
            if step.done() {
                let success = step.info.is_success().map_or(String::new(), |s| format!(", success {s}"));
                break format!("{}{success}", if step.terminated { "terminated" } else { "truncated" });
            }
            obs = step.obs;
        };
        writeln!(out, "Episode {end} after {steps} steps, return {total}.")?;
        env.record(&mut |obs| policy.act(obs), args.seed, args.png.as_deref(), args.gif.as_deref())?;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_environment_can_be_shown_and_checked() {
        for env in ["cartpole", "bitflip:6", "fourrooms:7"] {
            check_env(&CheckEnvArgs { env: env.into(), seed: 1, episodes: 3 }).unwrap();
            env_info(&EnvInfoArgs { env: env.into(), seed: 2, gif: None, png: None }).unwrap();
        }
        let err = env_info(&EnvInfoArgs { env: "bitflip:4".into(), seed: 0, gif: Some("x.gif".into()), png: None });
        assert!(err.unwrap_err().to_string().contains("CartPole only"));
        let err = check_env(&CheckEnvArgs { env: "pendulum".into(), seed: 0, episodes: 1 }).unwrap_err();
        assert!(err.to_string().contains("unknown environment `pendulum`"), "{err}");
    }
}
