//! `cargo xtask train`: train an agent and write a run folder.
//!
//! A DQN run folder holds `config.json` (the full `DqnConfig` and the
//! environment's configuration, enough to repeat the run), `metrics.csv`
//! (one row per event: episode ends, training bursts, evaluations),
//! `learning_curve.png`, `summary.json`, and checkpoints: `checkpoint/` (the
//! whole training state, rewritten after every evaluation and on Ctrl-C;
//! `--resume RUN` continues from it exactly), `best/` (the network of the
//! best evaluation, as Stable-Baselines3's `EvalCallback` keeps) and `last/`.
//!
//! The environment (`--env`) picks the default config and what "solved"
//! means ([`Task`]); `--device` picks the backend ([`Device`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rlhf_algo::dqn::{Dqn, DqnConfig, EvalSchedule, TrainEvent};
use rlhf_algo::evaluate;
use rlhf_algo::replay::HerConfig;
use rlhf_algo::tabular::{BoxDiscretizer, Discretize, QTable, TabularConfig, TabularMethod};
use rlhf_env::envs::cartpole::V1_MAX_EPISODE_STEPS;
use rlhf_env::{BitFlipping, CartPole, CartPoleConfig, Env, EnvId, FourRooms, TimeLimit, VecEnv};
use rlhf_model::checkpoint::{self, CheckpointInfo};
use serde::{Deserialize, Serialize};

use crate::task::{BackendJob, CARTPOLE_SOLVED, Device, Task};

const METRICS_HEADER: &str = "step,episode_return,episode_length,epsilon,success,loss,mean_q,eval_mean_return,eval_success_rate,wall_seconds,steps_per_second";

/// Learning algorithms `train` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algo {
    /// Deep Q-network.
    Dqn,
    /// Tabular Q-learning over a discretised observation.
    QLearning,
    /// Tabular SARSA over a discretised observation.
    Sarsa,
}

/// Arguments of `cargo xtask train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Environment id: `cartpole`, `bitflip:N` or `fourrooms:N` (on
    /// `--resume`, the checkpoint's).
    #[arg(long, default_value = "cartpole")]
    pub(crate) env: String,
    /// Hindsight relabeling on goal environments, `strategy[:k]` with
    /// strategy `future`, `final` or `episode`, or `none` (overrides the config's `her`).
    #[arg(long)]
    pub(crate) her: Option<String>,
    /// Backend the networks run on.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub(crate) device: Device,
    /// Learning algorithm.
    #[arg(long, value_enum, default_value_t = Algo::Dqn)]
    pub(crate) algo: Algo,
    /// Seed (overrides the config file's).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Environment steps to train for (overrides the config's `total_timesteps`).
    #[arg(long)]
    pub(crate) steps: Option<u64>,
    /// TOML file with the algorithm's config fields (`DqnConfig` or
    /// `TabularConfig`); unknown keys are errors.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Run folder (created; files of an earlier run there are replaced).
    #[arg(long, default_value = "runs/dqn-cartpole")]
    pub(crate) out: PathBuf,
    /// Continue the run in this folder from its `checkpoint/`.
    #[arg(long, conflicts_with_all = ["env", "her", "config", "seed", "steps", "out", "eval_every", "eval_episodes", "final_eval_episodes", "no_early_stop", "gravity", "masscart", "masspole", "length", "force_mag"])]
    pub(crate) resume: Option<PathBuf>,
    /// Environment steps between greedy evaluations (and checkpoints).
    #[arg(long, default_value_t = 2_500)]
    pub(crate) eval_every: u64,
    /// Episodes per periodic evaluation.
    #[arg(long, default_value_t = 10)]
    pub(crate) eval_episodes: usize,
    /// Episodes of the final evaluation.
    #[arg(long, default_value_t = 100)]
    pub(crate) final_eval_episodes: usize,
    /// Keep training after an evaluation reaches the solved threshold (by
    /// default training stops once a periodic evaluation and a confirming one
    /// on ten times as many fresh episodes both pass).
    #[arg(long)]
    pub(crate) no_early_stop: bool,
    /// Start from this checkpoint's network (fine-tuning); `freeze_layers`
    /// and `learning_rate` in `--config` control how it is tuned.
    #[arg(long, conflicts_with = "resume")]
    pub(crate) init_from: Option<PathBuf>,
    /// CartPole physics (Gymnasium's attribute names); unset fields keep CartPole-v1's values.
    #[command(flatten)]
    pub(crate) physics: PhysicsArgs,
}

/// CartPole's physical parameters, to make related tasks for fine-tuning.
#[derive(Debug, Clone, Default, Args)]
pub struct PhysicsArgs {
    /// Gravitational acceleration (9.8).
    #[arg(long)]
    pub(crate) gravity: Option<f64>,
    /// Cart mass (1.0).
    #[arg(long)]
    pub(crate) masscart: Option<f64>,
    /// Pole mass (0.1).
    #[arg(long)]
    pub(crate) masspole: Option<f64>,
    /// Half the pole's length, Gymnasium's `length` (0.5).
    #[arg(long)]
    pub(crate) length: Option<f64>,
    /// Push force (10.0).
    #[arg(long)]
    pub(crate) force_mag: Option<f64>,
}

impl PhysicsArgs {
    fn is_default(&self) -> bool {
        [self.gravity, self.masscart, self.masspole, self.length, self.force_mag].iter().all(Option::is_none)
    }

    fn cartpole(&self) -> anyhow::Result<TimeLimit<CartPole>> {
        let v1 = CartPoleConfig::default();
        let config = CartPoleConfig {
            gravity: self.gravity.unwrap_or(v1.gravity),
            masscart: self.masscart.unwrap_or(v1.masscart),
            masspole: self.masspole.unwrap_or(v1.masspole),
            length: self.length.unwrap_or(v1.length),
            force_mag: self.force_mag.unwrap_or(v1.force_mag),
            ..v1
        };
        Ok(TimeLimit::new(CartPole::new(config)?, V1_MAX_EPISODE_STEPS))
    }
}

/// What `config.json` holds: everything that defines the run.
#[derive(Debug, Serialize)]
struct RunConfig<'a, A: Serialize> {
    algo: &'a A,
    env_id: &'a str,
    env: serde_json::Value,
    init_from: Option<&'a Path>,
}

/// What `summary.json` holds.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub(crate) env: String,
    pub(crate) algo: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) her: Option<String>,
    pub(crate) backend: String,
    pub(crate) seed: u64,
    pub(crate) total_steps: u64,
    pub(crate) gradient_updates: u64,
    pub(crate) wall_seconds: f64,
    pub(crate) env_steps_per_second: f64,
    pub(crate) updates_per_second: f64,
    pub(crate) eval_mean_return: f64,
    pub(crate) eval_std_return: f64,
    pub(crate) eval_episodes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) eval_success_rate: Option<f64>,
    pub(crate) solved: bool,
    pub(crate) first_solved_step: Option<u64>,
}

/// The run's schedule and progress beyond the agent's own state, saved in
/// `checkpoint/` so that `--resume` continues with the same settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainerState {
    eval_every: u64,
    eval_episodes: usize,
    final_eval_episodes: usize,
    early_stop: bool,
    first_solved_step: Option<u64>,
    /// An evaluation was good enough to stop early.
    done: bool,
    best_eval: Option<f64>,
    wall_seconds: f64,
}

const TRAINER_FILE: &str = "trainer.json";

/// Trains as `args` say; `None` when Ctrl-C stopped the run (its state is saved).
pub fn train(args: &TrainArgs) -> anyhow::Result<Option<Summary>> {
    let env_id: EnvId = match &args.resume {
        Some(run) => checkpoint::read_meta(&run.join("checkpoint"))?.env_id.parse()?,
        None => args.env.parse()?,
    };
    if matches!(args.algo, Algo::QLearning | Algo::Sarsa) {
        anyhow::ensure!(env_id == EnvId::CartPoleV1, "tabular training supports CartPole-v1, not {env_id}");
        return train_tabular(args).map(Some);
    }
    anyhow::ensure!(
        args.her.is_none() || env_id.is_goal_env(),
        "--her needs a goal environment (bitflip:N, fourrooms:N), not {env_id}"
    );
    anyhow::ensure!(
        args.physics.is_default() || env_id == EnvId::CartPoleV1,
        "physics flags (--gravity, --length, ...) are CartPole's, not {env_id}'s"
    );
    match env_id {
        // On resume the environment's own settings come back with its snapshot.
        EnvId::CartPoleV1 => args.device.run(TrainJob { args, env: args.physics.cartpole()? }),
        EnvId::BitFlipping { n_bits } => args.device.run(TrainJob { args, env: BitFlipping::new(n_bits)? }),
        EnvId::FourRooms { size } => args.device.run(TrainJob { args, env: FourRooms::new(size)? }),
        other => anyhow::bail!("train does not know how to run DQN on {other}"),
    }
}

/// Training on one task, to run on the backend `--device` picks.
struct TrainJob<'a, E> {
    args: &'a TrainArgs,
    env: E,
}

impl<E: Task> BackendJob for TrainJob<'_, E> {
    type Output = Option<Summary>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Option<Summary>> {
        train_dqn::<E, B>(self.args, self.env, device)
    }
}

/// Reads a TOML config file over `preset`: the file's keys replace the
/// preset's. Errors (a bad value, an unknown key) name the file and the key.
pub(crate) fn read_config<T>(path: Option<&Path>, preset: T) -> anyhow::Result<T>
where
    T: Serialize + serde::de::DeserializeOwned + Default,
{
    let Some(path) = path else { return Ok(preset) };
    let text = fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    // Parsing on its own first gives errors with the file's line and column.
    toml::from_str::<T>(&text).with_context(|| format!("config {}", path.display()))?;
    let file: toml::Table = toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
    let mut merged = toml::Table::try_from(&preset).context("encoding the preset config")?;
    merged.extend(file);
    merged.try_into().with_context(|| format!("config {}", path.display()))
}

fn train_dqn<E: Task, B: AutodiffBackend>(
    args: &TrainArgs,
    mut env: E,
    device: B::Device,
) -> anyhow::Result<Option<Summary>> {
    let (out, mut agent, mut trainer, mut metrics) = match &args.resume {
        Some(run) => {
            let dir = run.join("checkpoint");
            let agent = env.load_agent::<B>(&dir, device.clone())?;
            let meta = checkpoint::read_meta(&dir)?;
            let trainer: TrainerState = serde_json::from_slice(&checkpoint::read_extra(&dir, &meta, TRAINER_FILE)?)
                .with_context(|| format!("{}", dir.join(TRAINER_FILE).display()))?;
            let metrics = metrics_until(&run.join("metrics.csv"), agent.num_timesteps())?;
            tracing::info!(step = agent.num_timesteps(), "resuming {}", run.display());
            (run.clone(), agent, trainer, metrics)
        }
        None => {
            let mut config: DqnConfig = read_config(args.config.as_deref(), env.default_config())?;
            config.seed = args.seed.unwrap_or(config.seed);
            config.total_timesteps = args.steps.unwrap_or(config.total_timesteps);
            if let Some(her) = &args.her {
                config.her = if her.eq_ignore_ascii_case("none") { None } else { Some(her.parse::<HerConfig>()?) };
            }
            let mut agent = env.new_agent::<B>(config, device.clone())?;
            if let Some(dir) = &args.init_from {
                let expected = checkpoint::Expectation {
                    env_id: env.id(),
                    obs_dim: env.network_input_dim(),
                    n_actions: agent.network_config().n_actions,
                };
                let (network, meta) = checkpoint::load::<B>(dir, &expected, &device)?;
                agent.init_from(network)?;
                tracing::info!(step = meta.step, "fine-tuning from {}", dir.display());
            }
            fs::create_dir_all(&args.out).with_context(|| format!("creating run folder {}", args.out.display()))?;
            let run_config = RunConfig {
                algo: agent.config(),
                env_id: env.id(),
                env: env.describe(),
                init_from: args.init_from.as_deref(),
            };
            write_atomically(&args.out.join("config.json"), serde_json::to_string_pretty(&run_config)?.as_bytes())?;
            let trainer = TrainerState {
                eval_every: args.eval_every.max(1),
                eval_episodes: args.eval_episodes,
                final_eval_episodes: args.final_eval_episodes,
                early_stop: !args.no_early_stop,
                first_solved_step: None,
                done: false,
                best_eval: None,
                wall_seconds: 0.0,
            };
            (args.out.clone(), agent, trainer, format!("{METRICS_HEADER}\n"))
        }
    };
    let mut eval_env = env.fresh()?;
    let total = agent.config().total_timesteps;
    let seed = agent.config().seed;
    let eval_seed = seed.wrapping_add(1_000_000);

    let interrupted = interrupt_flag()?;

    let progress = ProgressBar::new(total).with_position(agent.num_timesteps()).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let wall_before = trainer.wall_seconds;
    let steps_at_start = agent.num_timesteps();
    let mut recent_returns = std::collections::VecDeque::with_capacity(20);
    let chunk = trainer.eval_every;
    let mut improved = false;
    // Training bursts are averaged into one row per `row_every` steps (one
    // gradient step per environment step would otherwise mean a row each).
    let row_every = (chunk / 25).max(1);
    let mut bursts = BurstMeans::new(agent.num_timesteps());
    // With several environments, each chunk collects from copies of `env`
    // (threaded from 1,024 on: below that rayon's overhead outweighs a
    // CartPole step) and ends with the evaluation `learn` would have made.
    let n_envs = agent.config().n_envs;
    let eval_episodes = trainer.eval_episodes;
    let mut vec_envs = match n_envs {
        1 => None,
        n => {
            let envs = (0..n).map(|_| env.fresh()).collect::<anyhow::Result<Vec<_>>>()?;
            Some(VecEnv::new(envs)?.with_threads(n >= 1_024))
        }
    };
    while agent.num_timesteps() < total && !(trainer.early_stop && trainer.done) {
        let steps = (chunk - agent.num_timesteps() % chunk).min(total - agent.num_timesteps());
        let mut on_event = |event: &TrainEvent| {
            let wall = wall_before + start.elapsed().as_secs_f64();
            let step = match event {
                TrainEvent::Episode { step, .. } | TrainEvent::Train { step, .. } | TrainEvent::Eval { step, .. } => {
                    *step
                }
            };
            let per_second = (step - steps_at_start) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            let mut write = |row: String| metrics.push_str(&format!("{step},{row},{wall:.3},{per_second:.1}\n"));
            match event {
                TrainEvent::Episode { episode_return, length, epsilon, success, .. } => {
                    if recent_returns.len() == 20 {
                        recent_returns.pop_front();
                    }
                    recent_returns.push_back(*episode_return);
                    let mean = recent_returns.iter().sum::<f64>() / recent_returns.len() as f64;
                    progress.set_position(step);
                    progress.set_message(format!("return(20) {mean:.1} eps {epsilon:.3}"));
                    let success = success.map_or(String::new(), |s| u8::from(s).to_string());
                    write(format!("{episode_return},{length},{epsilon:.4},{success},,,,"));
                }
                TrainEvent::Train { loss, mean_q, .. } => {
                    bursts.add(*loss, *mean_q);
                    if step - bursts.since >= row_every {
                        write(bursts.take(step));
                    }
                }
                TrainEvent::Eval { report, .. } => {
                    // Chunks end with an evaluation: flushing here keeps the rows of a
                    // resumed run equal to those of a run never stopped.
                    if bursts.count > 0 {
                        write(bursts.take(step));
                    }
                    bursts.since = step;
                    tracing::info!(
                        step,
                        mean_return = report.mean_return,
                        success_rate = report.success_rate,
                        "evaluation"
                    );
                    if E::solved(report) && trainer.first_solved_step.is_none() {
                        trainer.first_solved_step = Some(step);
                    }
                    trainer.done |= E::done_training(report);
                    // Success first, return second: on goal tasks the return also rewards speed.
                    let score = report.success_rate.unwrap_or(0.0) * 1e9 + report.mean_return;
                    if trainer.best_eval.is_none_or(|best| score > best) {
                        trainer.best_eval = Some(score);
                        improved = true;
                    }
                    let rate = report.success_rate.map_or(String::new(), |r| format!("{r:.3}"));
                    write(format!(",,,,,,{:.2},{rate}", report.mean_return));
                }
            }
        };
        match vec_envs.as_mut() {
            Some(envs) => {
                agent.learn_vec(envs, steps.div_ceil(n_envs as u64), &mut on_event)?;
                let seed = eval_seed.wrapping_add(agent.num_timesteps());
                let report = agent.evaluate(&mut eval_env, eval_episodes, seed)?;
                on_event(&TrainEvent::Eval { step: agent.num_timesteps(), report });
            }
            None => {
                let eval = EvalSchedule { env: &mut eval_env, every: chunk, episodes: eval_episodes, seed: eval_seed };
                agent.learn(&mut env, steps, Some(eval), &mut on_event)?;
            }
        }
        if trainer.early_stop && trainer.done {
            // One lucky evaluation is not enough to stop: confirm on ten times
            // as many fresh episodes (a 0.97 policy scores 1.00 on 100 episodes
            // one time in twenty).
            let seed = eval_seed.wrapping_add(u64::MAX / 4).wrapping_add(agent.num_timesteps());
            let check = agent.evaluate(&mut eval_env, 10 * trainer.eval_episodes, seed)?;
            trainer.done = E::confirms_stop(&check);
            tracing::info!(
                mean_return = check.mean_return,
                success_rate = check.success_rate,
                confirmed = trainer.done,
                "confirming the early stop"
            );
        }
        trainer.wall_seconds = wall_before + start.elapsed().as_secs_f64();
        // Evaluations end each chunk, so the network now is the one just evaluated.
        if std::mem::take(&mut improved) {
            save_network(&agent, &out.join("best"), env.id())?;
        }
        write_atomically(&out.join("metrics.csv"), metrics.as_bytes())?;
        plot_metrics(&metrics, &format!("DQN on {}", env.id()), &out.join("learning_curve.png"))?;
        let trainer_json = serde_json::to_vec_pretty(&trainer)?;
        agent.save(&out.join("checkpoint"), &env, &[(TRAINER_FILE, &trainer_json)])?;
        if interrupted.load(Ordering::SeqCst) {
            progress.abandon_with_message("interrupted");
            eprintln!(
                "Interrupted at step {}; the training state is saved. Continue with `cargo xtask train --resume {}`.",
                agent.num_timesteps(),
                out.display()
            );
            return Ok(None);
        }
    }
    progress.finish_and_clear();
    save_network(&agent, &out.join("last"), env.id())?;

    let report = agent.evaluate(&mut eval_env, trainer.final_eval_episodes, eval_seed.wrapping_add(u64::MAX / 2))?;
    let wall_seconds = trainer.wall_seconds;
    let summary = Summary {
        env: env.id().to_owned(),
        algo: "dqn",
        her: agent.config().her.map(|her| her.to_string()),
        backend: B::name(&device),
        seed,
        total_steps: agent.num_timesteps(),
        gradient_updates: agent.gradient_updates(),
        wall_seconds,
        env_steps_per_second: agent.num_timesteps() as f64 / wall_seconds,
        updates_per_second: agent.gradient_updates() as f64 / wall_seconds,
        eval_mean_return: report.mean_return,
        eval_std_return: report.std_return,
        eval_episodes: report.returns.len(),
        eval_success_rate: report.success_rate,
        solved: E::solved(&report),
        first_solved_step: trainer.first_solved_step,
    };
    write_atomically(&out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(Some(summary))
}

/// Loss and mean Q of the training bursts since the last metrics row.
struct BurstMeans {
    loss: f64,
    mean_q: f64,
    count: u32,
    /// Step of the last row.
    since: u64,
}

impl BurstMeans {
    fn new(step: u64) -> Self {
        Self { loss: 0.0, mean_q: 0.0, count: 0, since: step }
    }

    fn add(&mut self, loss: f64, mean_q: f64) {
        self.loss += loss;
        self.mean_q += mean_q;
        self.count += 1;
    }

    /// The row's loss and mean-Q columns, resetting the sums.
    fn take(&mut self, step: u64) -> String {
        let n = f64::from(self.count.max(1));
        let row = format!(",,,,{:.6},{:.4},,", self.loss / n, self.mean_q / n);
        *self = Self::new(step);
        row
    }
}

/// Set by Ctrl-C; the handler is installed once per process (the benchmark
/// trains many runs in one process, on several threads at once:
/// `get_or_init` makes the others wait while the first installs it).
fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Result<Arc<AtomicBool>, String>> = OnceLock::new();
    let installed = FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = Arc::clone(&flag);
        ctrlc::set_handler(move || handler_flag.store(true, Ordering::SeqCst)).map(|()| flag).map_err(|e| e.to_string())
    });
    installed.clone().map_err(|e| anyhow::anyhow!("installing the Ctrl-C handler: {e}"))
}

/// Draws `learning_curve.png` from the rows of `metrics.csv`.
fn plot_metrics(metrics: &str, title: &str, path: &Path) -> anyhow::Result<()> {
    let (mut episodes, mut evaluations) = (Vec::new(), Vec::new());
    for line in metrics.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        let Some(step) = fields.first().and_then(|f| f.parse::<u64>().ok()) else { continue };
        if let Some(episode_return) = number(1) {
            episodes.push((step, episode_return));
        }
        if let Some(eval_return) = number(7) {
            evaluations.push((step, eval_return));
        }
    }
    rlhf_bench::plot_learning_curve(path, title, &episodes, &evaluations)?;
    Ok(())
}

/// The header and the rows of an earlier `metrics.csv` up to `step`: rows
/// written after the checkpoint was taken are dropped, so a resumed run's
/// metrics are those of a run never stopped.
fn metrics_until(path: &Path, step: u64) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut kept = format!("{METRICS_HEADER}\n");
    for (number, line) in text.lines().enumerate().skip(1) {
        let row_step: u64 = line
            .split(',')
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{}:{}: malformed row `{line}`", path.display(), number + 1))?;
        if row_step <= step {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

fn save_network<B: AutodiffBackend>(agent: &Dqn<B>, dir: &Path, env_id: &str) -> anyhow::Result<()> {
    let info = CheckpointInfo {
        env_id: env_id.to_owned(),
        step: agent.num_timesteps(),
        backend: agent.backend_name(),
        run_config: serde_json::to_value(agent.config())?,
    };
    checkpoint::save(dir, agent.online(), agent.network_config(), info)?;
    Ok(())
}

/// Tabular Q-learning or SARSA on CartPole with the pole's angle and angular
/// velocity binned (6 × 12 cells; position and velocity ignored).
fn train_tabular(args: &TrainArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.resume.is_none() && args.init_from.is_none(), "--resume and --init-from are for DQN runs");
    let mut config: TabularConfig = read_config(args.config.as_deref(), TabularConfig::default())?;
    config.method = if args.algo == Algo::Sarsa { TabularMethod::Sarsa } else { TabularMethod::QLearning };
    config.seed = args.seed.unwrap_or(config.seed);
    let steps = args.steps.unwrap_or(200_000);
    let bins = BoxDiscretizer::new(vec![1, 1, 6, 12], vec![-2.4, -3.0, -0.21, -3.5], vec![2.4, 3.0, 0.21, 3.5])?;
    let mut env = args.physics.cartpole()?;
    fs::create_dir_all(&args.out).with_context(|| format!("creating run folder {}", args.out.display()))?;
    let run_config = RunConfig { algo: &config, env_id: env.id(), env: env.describe(), init_from: None };
    write_atomically(&args.out.join("config.json"), serde_json::to_string_pretty(&run_config)?.as_bytes())?;

    let start = Instant::now();
    let mut table = QTable::new(Discretize::<[f32; 4]>::n_states(&bins), env.action_space().n())?;
    table.learn(&mut env, &bins, &config, steps)?;
    let wall_seconds = start.elapsed().as_secs_f64();
    let mut greedy = |obs: &[f32; 4]| table.greedy(bins.index(obs));
    let report =
        evaluate(&mut CartPole::v1(), &mut greedy, args.final_eval_episodes, config.seed.wrapping_add(1_000_000))?;
    let summary = Summary {
        env: env.id().to_owned(),
        algo: if config.method == TabularMethod::Sarsa { "sarsa" } else { "q-learning" },
        her: None,
        backend: "none".to_owned(),
        seed: config.seed,
        total_steps: steps,
        gradient_updates: 0,
        wall_seconds,
        env_steps_per_second: steps as f64 / wall_seconds,
        updates_per_second: steps as f64 / wall_seconds,
        eval_mean_return: report.mean_return,
        eval_std_return: report.std_return,
        eval_episodes: report.returns.len(),
        eval_success_rate: None,
        solved: report.mean_return >= CARTPOLE_SOLVED,
        first_solved_step: None,
    };
    write_atomically(&args.out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interrupt_flag_is_installed_once_when_many_runs_start_together() {
        let flags: Vec<Arc<AtomicBool>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| interrupt_flag().unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(flags.iter().all(|f| Arc::ptr_eq(f, &flags[0])));
    }

    fn args(out: &Path) -> TrainArgs {
        TrainArgs {
            env: "bitflip:6".into(),
            her: Some("future:4".into()),
            device: Device::Cpu,
            algo: Algo::Dqn,
            seed: Some(3),
            steps: Some(1_200),
            config: None,
            out: out.to_owned(),
            resume: None,
            eval_every: 400,
            eval_episodes: 20,
            final_eval_episodes: 50,
            no_early_stop: true,
            init_from: None,
            physics: PhysicsArgs::default(),
        }
    }

    /// The metrics without the wall-clock columns.
    fn metrics_without_time(run: &Path) -> Vec<String> {
        let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
        text.lines().map(|line| line.split(',').take(9).collect::<Vec<_>>().join(",")).collect()
    }

    #[test]
    fn a_goal_run_stopped_by_ctrl_c_and_resumed_equals_one_never_stopped() {
        let root = std::env::temp_dir().join(format!("rlhf-xtask-train-{}", std::process::id()));
        let (whole, split) = (root.join("whole"), root.join("split"));
        let summary = train(&args(&whole)).unwrap().unwrap();
        assert_eq!(summary.env, "bitflip:6");
        assert_eq!(summary.her.as_deref(), Some("future:4"));
        assert!(summary.eval_success_rate.is_some());
        for file in
            ["config.json", "metrics.csv", "learning_curve.png", "summary.json", "best/meta.json", "last/meta.json"]
        {
            assert!(whole.join(file).exists(), "{file}");
        }

        // Ctrl-C during the first chunk: the run saves at its end and returns.
        let flag = interrupt_flag().unwrap();
        flag.store(true, Ordering::SeqCst);
        let stopped = train(&args(&split));
        flag.store(false, Ordering::SeqCst);
        assert!(stopped.unwrap().is_none(), "an interrupted run returns no summary");
        let resume = TrainArgs { resume: Some(split.clone()), ..args(Path::new("unused")) };
        let resumed = train(&TrainArgs { env: "cartpole".into(), her: None, ..resume }).unwrap().unwrap();

        assert_eq!(metrics_without_time(&whole), metrics_without_time(&split));
        assert_eq!(resumed.eval_success_rate, summary.eval_success_rate);
        assert_eq!(resumed.gradient_updates, summary.gradient_updates);

        // The same with eight CartPoles stepped together (`n_envs`), in this
        // test because the interrupt flag is process-wide.
        fs::create_dir_all(&root).unwrap();
        let config = root.join("vec.toml");
        fs::write(&config, "n_envs = 8\nlearning_starts = 200\ntrain_freq = 1\ngradient_steps = 1\n").unwrap();
        let vec_args = |out: &Path| TrainArgs {
            env: "cartpole".into(),
            her: None,
            config: Some(config.clone()),
            steps: Some(2_000),
            eval_every: 500,
            eval_episodes: 5,
            ..args(out)
        };
        let (whole, split) = (root.join("vec-whole"), root.join("vec-split"));
        let summary = train(&vec_args(&whole)).unwrap().unwrap();
        // 2,000 steps in vector steps of 8, one update per vector step after 200 steps.
        assert_eq!(summary.total_steps, 2_000);
        assert_eq!(summary.gradient_updates, (2_000 - 200) / 8);
        flag.store(true, Ordering::SeqCst);
        let stopped = train(&vec_args(&split));
        flag.store(false, Ordering::SeqCst);
        assert!(stopped.unwrap().is_none());
        let resumed =
            train(&TrainArgs { resume: Some(split.clone()), ..vec_args(Path::new("unused")) }).unwrap().unwrap();
        assert_eq!(metrics_without_time(&whole), metrics_without_time(&split));
        assert_eq!(resumed.eval_mean_return, summary.eval_mean_return);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn her_on_cartpole_and_unknown_config_keys_are_errors() {
        let dir = std::env::temp_dir().join(format!("rlhf-xtask-bad-{}", std::process::id()));
        let err = train(&TrainArgs { env: "cartpole".into(), ..args(&dir) }).unwrap_err();
        assert!(err.to_string().contains("--her needs a goal environment"), "{err}");
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("bad.toml");
        fs::write(&config, "learning_rate = 1e-3\nlearning_rat = 2\n").unwrap();
        let err = train(&TrainArgs { config: Some(config), ..args(&dir) }).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("bad.toml") && message.contains("learning_rat"), "{message}");
        fs::remove_dir_all(dir).unwrap();
    }
}
