//! `cargo xtask train`: train an agent and write a run folder.
//!
//! DQN training is wiring of the library's callbacks (`rlhf_algo::callbacks`)
//! around `Dqn::learn_vec` on `n_envs` copies of the task. A run folder
//! holds `config.json` (the full `DqnConfig`, the environment's
//! configuration and the evaluation schedule, enough to repeat the run), `metrics.csv`
//! (one row per event: episode ends, training bursts, evaluations),
//! `learning_curve.png`, `summary.json`, and checkpoints: `checkpoint/` (the
//! whole training state, rewritten after every evaluation and on Ctrl-C;
//! `--resume RUN` continues from it exactly), `best/` (the network of the
//! best evaluation, as Stable-Baselines3's `EvalCallback` keeps) and `last/`.
//!
//! The environment (`--env`) picks the default config and what "solved"
//! means ([`Task`]); `--device` picks the backend ([`Device`]).

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use rlhf_algo::AlgoError;
use rlhf_algo::callbacks::{
    Callback, CallbackContext, CheckpointCallback, EvalCallback, MetricsCallback, ProgressCallback, StopOnThreshold,
    TrainEvent, observer, read_metrics,
};
use rlhf_algo::dqn::{Dqn, DqnConfig};
use rlhf_algo::evaluate;
use rlhf_algo::replay::HerConfig;
use rlhf_algo::tabular::{BoxDiscretizer, Discretize, QTable, TabularConfig, TabularMethod};
use rlhf_env::envs::cartpole::V1_MAX_EPISODE_STEPS;
use rlhf_env::{CartPole, CartPoleConfig, Env, EnvId, TimeLimit, VecEnv};
use rlhf_model::checkpoint;
use serde::{Deserialize, Serialize};

use crate::task::{BackendJob, CARTPOLE_SOLVED, Device, Task, TaskJob, with_task};

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
    /// CartPole-v1's physics with the flags given replaced.
    fn cartpole(&self) -> anyhow::Result<CartPoleConfig> {
        let v1 = CartPoleConfig::default();
        let config = CartPoleConfig {
            gravity: self.gravity.unwrap_or(v1.gravity),
            masscart: self.masscart.unwrap_or(v1.masscart),
            masspole: self.masspole.unwrap_or(v1.masspole),
            length: self.length.unwrap_or(v1.length),
            force_mag: self.force_mag.unwrap_or(v1.force_mag),
            ..v1
        };
        CartPole::new(config)?; // checks the values
        Ok(config)
    }
}

/// What `config.json` holds: everything that defines the run.
#[derive(Debug, Serialize, Deserialize)]
struct RunConfig<A> {
    algo: A,
    env_id: String,
    env: serde_json::Value,
    #[serde(default)]
    init_from: Option<PathBuf>,
    /// How DQN runs are evaluated and stopped (absent for tabular runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<Schedule>,
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

/// How a DQN run is evaluated and when it stops, saved in `config.json` so
/// that `--resume` continues with the same settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Environment steps between greedy evaluations (and checkpoints).
    pub eval_every: u64,
    /// Episodes per periodic evaluation.
    pub eval_episodes: usize,
    /// Episodes of the final evaluation.
    pub final_eval_episodes: usize,
    /// Stop once an evaluation solves the task and a confirming one on ten
    /// times as many fresh episodes agrees.
    pub early_stop: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { eval_every: 2_500, eval_episodes: 10, final_eval_episodes: 100, early_stop: true }
    }
}

/// A new DQN run: what `train` does without `--resume`, and what the
/// benchmarks start (they build this, not the command line's arguments).
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The environment.
    pub env: EnvId,
    /// CartPole's physics (CartPole only).
    pub cartpole: CartPoleConfig,
    /// The config: the task's preset with these fields replaced.
    pub config: ConfigOverrides,
    /// Evaluation and stopping.
    pub schedule: Schedule,
    /// The run folder.
    pub out: PathBuf,
    /// A checkpoint whose network to start from (fine-tuning).
    pub init_from: Option<PathBuf>,
    /// The backend.
    pub device: Device,
}

/// Changes to a task's preset config, in the order they apply.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    /// A TOML file of `DqnConfig` fields.
    pub file: Option<PathBuf>,
    /// The seed.
    pub seed: Option<u64>,
    /// `total_timesteps`.
    pub steps: Option<u64>,
    /// Hindsight relabeling (`Some(None)`: none).
    pub her: Option<Option<HerConfig>>,
    /// `n_envs`.
    pub n_envs: Option<usize>,
    /// `n_steps`.
    pub n_steps: Option<usize>,
}

impl ConfigOverrides {
    /// The task's `preset` with the file's fields, then the others, replaced.
    fn apply(&self, preset: DqnConfig) -> anyhow::Result<DqnConfig> {
        let mut config: DqnConfig = read_config(self.file.as_deref(), preset)?;
        config.seed = self.seed.unwrap_or(config.seed);
        config.total_timesteps = self.steps.unwrap_or(config.total_timesteps);
        config.her = self.her.unwrap_or(config.her);
        config.n_envs = self.n_envs.unwrap_or(config.n_envs);
        config.n_steps = self.n_steps.unwrap_or(config.n_steps);
        Ok(config)
    }
}

impl NewRun {
    /// A run of `env` on its defaults, written to `out`.
    pub fn new(env: EnvId, out: impl Into<PathBuf>) -> Self {
        Self {
            env,
            cartpole: CartPoleConfig::default(),
            config: ConfigOverrides::default(),
            schedule: Schedule::default(),
            out: out.into(),
            init_from: None,
            device: Device::Cpu,
        }
    }

    /// Trains; `None` when Ctrl-C stopped the run (its state is saved).
    pub fn train(&self) -> anyhow::Result<Option<Summary>> {
        anyhow::ensure!(
            self.config.her.is_none() || self.env.is_goal_env(),
            "--her needs a goal environment (bitflip:N, fourrooms:N), not {}",
            self.env
        );
        anyhow::ensure!(
            self.cartpole == CartPoleConfig::default() || self.env == EnvId::CartPoleV1,
            "physics flags (--gravity, --length, ...) are CartPole's, not {}'s",
            self.env
        );
        with_task(self.env, &self.cartpole, TrainJob { start: Start::New(self) })
    }
}

/// Continues the run in `run` from its `checkpoint/` on `device`.
pub fn resume(run: &Path, device: Device) -> anyhow::Result<Option<Summary>> {
    let config: RunConfig<serde_json::Value> = read_json(&run.join("config.json"))?;
    let env: EnvId = config.env_id.parse()?;
    let cartpole = match env {
        EnvId::CartPoleV1 => {
            serde_json::from_value(config.env).with_context(|| format!("{}: env", run.join("config.json").display()))?
        }
        _ => CartPoleConfig::default(),
    };
    with_task(env, &cartpole, TrainJob { start: Start::Resume { run, device } })
}

/// Trains as `args` say; `None` when Ctrl-C stopped the run (its state is saved).
pub fn train(args: &TrainArgs) -> anyhow::Result<Option<Summary>> {
    if let Some(run) = &args.resume {
        anyhow::ensure!(args.algo == Algo::Dqn, "--resume continues DQN runs");
        return resume(run, args.device);
    }
    let env: EnvId = args.env.parse()?;
    if matches!(args.algo, Algo::QLearning | Algo::Sarsa) {
        anyhow::ensure!(env == EnvId::CartPoleV1, "tabular training supports CartPole-v1, not {env}");
        return train_tabular(args).map(Some);
    }
    let her = match &args.her {
        None => None,
        Some(her) if her.eq_ignore_ascii_case("none") => Some(None),
        Some(her) => Some(Some(her.parse::<HerConfig>()?)),
    };
    NewRun {
        env,
        cartpole: args.physics.cartpole()?,
        config: ConfigOverrides {
            file: args.config.clone(),
            seed: args.seed,
            steps: args.steps,
            her,
            ..Default::default()
        },
        schedule: Schedule {
            eval_every: args.eval_every.max(1),
            eval_episodes: args.eval_episodes,
            final_eval_episodes: args.final_eval_episodes,
            early_stop: !args.no_early_stop,
        },
        out: args.out.clone(),
        init_from: args.init_from.clone(),
        device: args.device,
    }
    .train()
}

/// Where a run starts.
enum Start<'a> {
    New(&'a NewRun),
    Resume { run: &'a Path, device: Device },
}

/// Training on one task, to run on the backend the run names.
struct TrainJob<'a> {
    start: Start<'a>,
}

impl TaskJob for TrainJob<'_> {
    type Output = Option<Summary>;

    fn run<E: Task>(self, env: E) -> anyhow::Result<Option<Summary>> {
        let device = match &self.start {
            Start::New(run) => run.device,
            Start::Resume { device, .. } => *device,
        };
        device.run(DqnJob { start: self.start, env })
    }
}

/// Training on one task and one backend.
struct DqnJob<'a, E> {
    start: Start<'a>,
    env: E,
}

impl<E: Task> BackendJob for DqnJob<'_, E> {
    type Output = Option<Summary>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Option<Summary>> {
        train_dqn::<E, B>(self.start, self.env, device)
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

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))
}

/// A new agent with `config`, as `run` says, with its run folder started.
fn start_run<E: Task, B: AutodiffBackend>(
    run: &NewRun,
    config: DqnConfig,
    env: &E,
    device: &B::Device,
) -> anyhow::Result<Dqn<B>> {
    let mut agent = env.new_agent::<B>(config, device.clone())?;
    if let Some(dir) = &run.init_from {
        let expected = checkpoint::Expectation {
            env_id: env.id(),
            obs_dim: agent.network_config().obs_dim,
            n_actions: agent.network_config().n_actions,
        };
        let (network, meta) = checkpoint::load::<B>(dir, &expected, device)?;
        agent.init_from(network)?;
        tracing::info!(step = meta.step, "fine-tuning from {}", dir.display());
    }
    fs::create_dir_all(&run.out).with_context(|| format!("creating run folder {}", run.out.display()))?;
    let run_config = RunConfig {
        algo: agent.config(),
        env_id: env.id().to_owned(),
        env: env.describe(),
        init_from: run.init_from.clone(),
        schedule: Some(run.schedule),
    };
    write_atomically(&run.out.join("config.json"), serde_json::to_string_pretty(&run_config)?.as_bytes())?;
    Ok(agent)
}

fn train_dqn<E: Task, B: AutodiffBackend>(
    start: Start<'_>,
    env: E,
    device: B::Device,
) -> anyhow::Result<Option<Summary>> {
    let (config, schedule) = match &start {
        Start::New(run) => (run.config.apply(env.default_config())?, run.schedule),
        Start::Resume { run, .. } => {
            let saved: RunConfig<DqnConfig> = read_json(&run.join("config.json"))?;
            (saved.algo, saved.schedule.with_context(|| format!("{}: no schedule", run.display()))?)
        }
    };
    let n_envs = config.n_envs;
    // Threaded from 1,024 environments on: below that rayon's overhead
    // outweighs a CartPole step.
    let copies = (0..n_envs.max(1)).map(|_| env.fresh()).collect::<anyhow::Result<Vec<_>>>()?;
    let mut envs = VecEnv::new(copies)?.with_threads(n_envs >= 1_024);
    let (out, mut agent) = match &start {
        Start::New(run) => (run.out.clone(), start_run::<E, B>(run, config, &env, &device)?),
        Start::Resume { run, .. } => {
            let agent = E::load_agent::<B>(&run.join("checkpoint"), &mut envs, device.clone())?;
            tracing::info!(step = agent.num_timesteps(), "resuming {}", run.display());
            ((*run).to_owned(), agent)
        }
    };
    let total = agent.config().total_timesteps;
    let seed = agent.config().seed;
    let eval_seed = seed.wrapping_add(1_000_000);
    let checkpoint_dir = out.join("checkpoint");

    // The callbacks, in the order they see each event.
    let mut metrics = MetricsCallback::new(out.join("metrics.csv"), (schedule.eval_every / 25).max(1));
    let mut eval = EvalCallback::new(env.fresh()?, schedule.eval_every, schedule.eval_episodes, eval_seed)
        .with_best_model(out.join("best"));
    let mut stop = StopOnThreshold::<B>::new(E::stop_threshold()).confirm_on(
        env.fresh()?,
        10 * schedule.eval_episodes,
        eval_seed.wrapping_add(u64::MAX / 4),
        E::confirm_threshold(),
    );
    let mut record =
        RunRecord::<E>::new(format!("DQN on {}", env.id()), out.join("learning_curve.png"), out.join("metrics.csv"));
    let mut checkpoints = CheckpointCallback::new(schedule.eval_every, &checkpoint_dir);
    let interrupted = interrupt_flag()?;
    let mut on_interrupt = OnInterrupt { flag: Arc::clone(&interrupted), dir: checkpoint_dir.clone() };
    let mut progress = ProgressCallback::new(total, agent.num_timesteps());
    let mut never_stop = observer(|_: &TrainEvent| {});
    let stopper: &mut dyn Callback<B> = if schedule.early_stop { &mut stop } else { &mut never_stop };
    let mut callbacks: [&mut dyn Callback<B>; 7] =
        [&mut metrics, &mut eval, &mut record, stopper, &mut checkpoints, &mut on_interrupt, &mut progress];
    if matches!(start, Start::Resume { .. }) {
        Dqn::restore_callbacks(&checkpoint_dir, &mut callbacks)?;
    }

    let remaining = total.saturating_sub(agent.num_timesteps());
    agent.learn_vec(&mut envs, remaining.div_ceil(n_envs.max(1) as u64), &mut callbacks)?;
    if interrupted.load(Ordering::SeqCst) {
        progress.bar().abandon_with_message("interrupted");
        eprintln!(
            "Interrupted at step {}; the training state is saved. Continue with `cargo xtask train --resume {}`.",
            agent.num_timesteps(),
            out.display()
        );
        return Ok(None);
    }
    progress.bar().finish_and_clear();
    metrics.flush()?;
    record.plot()?;
    agent.save_network(&out.join("last"), env.id())?;

    let mut eval_env = env.fresh()?;
    let report = agent.evaluate(&mut eval_env, schedule.final_eval_episodes, eval_seed.wrapping_add(u64::MAX / 2))?;
    let wall_seconds = metrics.wall_seconds();
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
        solved: E::solved_threshold().reached(&report),
        first_solved_step: record.first_solved_step,
    };
    write_atomically(&out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(Some(summary))
}

/// The run's own record: the first step an evaluation solved the task, and
/// the learning curve redrawn after every evaluation.
struct RunRecord<E> {
    title: String,
    png: PathBuf,
    metrics: PathBuf,
    first_solved_step: Option<u64>,
    task: std::marker::PhantomData<E>,
}

impl<E: Task> RunRecord<E> {
    fn new(title: String, png: PathBuf, metrics: PathBuf) -> Self {
        Self { title, png, metrics, first_solved_step: None, task: std::marker::PhantomData }
    }

    /// Draws `learning_curve.png` from the rows of `metrics.csv`.
    fn plot(&self) -> anyhow::Result<()> {
        let rows = read_metrics(&self.metrics)?;
        let episodes: Vec<(u64, f64)> = rows.iter().filter_map(|r| Some((r.step, r.episode_return?))).collect();
        let evaluations: Vec<(u64, f64)> = rows.iter().filter_map(|r| Some((r.step, r.eval_mean_return?))).collect();
        rlhf_bench::plot_learning_curve(&self.png, &self.title, &episodes, &evaluations)?;
        Ok(())
    }
}

impl<E: Task, B: AutodiffBackend> Callback<B> for RunRecord<E> {
    fn on_event(&mut self, event: &TrainEvent, _: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        if let TrainEvent::Eval { step, report } = event {
            tracing::info!(step, mean_return = report.mean_return, success_rate = report.success_rate, "evaluation");
            if E::solved_threshold().reached(report) && self.first_solved_step.is_none() {
                self.first_solved_step = Some(*step);
            }
            // The metrics callback, before this one, has just written the rows.
            self.plot().map_err(|e| AlgoError::BadState { path: self.png.clone(), reason: format!("{e:#}") })?;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "first_solved_step": self.first_solved_step })
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), AlgoError> {
        self.first_solved_step = state.get("first_solved_step").and_then(serde_json::Value::as_u64);
        Ok(())
    }
}

/// On Ctrl-C: save a checkpoint at the end of this step and stop.
struct OnInterrupt {
    flag: Arc<AtomicBool>,
    dir: PathBuf,
}

impl<B: AutodiffBackend> Callback<B> for OnInterrupt {
    fn on_event(&mut self, event: &TrainEvent, ctx: &mut CallbackContext<'_, B>) -> Result<ControlFlow<()>, AlgoError> {
        if matches!(event, TrainEvent::Step { .. }) && self.flag.load(Ordering::SeqCst) {
            ctx.save_checkpoint(self.dir.clone());
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
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

/// Tabular Q-learning or SARSA on CartPole with the pole's angle and angular
/// velocity binned (6 × 12 cells; position and velocity ignored).
fn train_tabular(args: &TrainArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(args.resume.is_none() && args.init_from.is_none(), "--resume and --init-from are for DQN runs");
    let mut config: TabularConfig = read_config(args.config.as_deref(), TabularConfig::default())?;
    config.method = if args.algo == Algo::Sarsa { TabularMethod::Sarsa } else { TabularMethod::QLearning };
    config.seed = args.seed.unwrap_or(config.seed);
    let steps = args.steps.unwrap_or(200_000);
    let bins = BoxDiscretizer::new(vec![1, 1, 6, 12], vec![-2.4, -3.0, -0.21, -3.5], vec![2.4, 3.0, 0.21, 3.5])?;
    let mut env = TimeLimit::new(CartPole::new(args.physics.cartpole()?)?, V1_MAX_EPISODE_STEPS);
    fs::create_dir_all(&args.out).with_context(|| format!("creating run folder {}", args.out.display()))?;
    let run_config =
        RunConfig { algo: &config, env_id: env.id().to_owned(), env: env.describe(), init_from: None, schedule: None };
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

/// Writes `bytes` to `path` atomically (the one helper, in `rlhf_env::atomic`).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    rlhf_env::atomic::write_atomically(path, bytes).with_context(|| format!("writing {}", path.display()))
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

    /// The metrics rows, read by column name, without the wall-clock columns.
    fn metrics_without_time(run: &Path) -> Vec<rlhf_algo::callbacks::MetricsRow> {
        let rows = read_metrics(&run.join("metrics.csv")).unwrap();
        rows.into_iter()
            .map(|row| rlhf_algo::callbacks::MetricsRow { wall_seconds: 0.0, steps_per_second: 0.0, ..row })
            .collect()
    }

    #[test]
    fn a_goal_run_stopped_by_ctrl_c_and_resumed_equals_one_never_stopped() {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = tmp.path();
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

        // Ctrl-C before the first step: the run saves a checkpoint after it and returns.
        let flag = interrupt_flag().unwrap();
        flag.store(true, Ordering::SeqCst);
        let stopped = train(&args(&split));
        flag.store(false, Ordering::SeqCst);
        assert!(stopped.unwrap().is_none(), "an interrupted run returns no summary");
        let resume = TrainArgs { resume: Some(split.clone()), ..args(Path::new("unused")) };
        let resumed = train(&TrainArgs { env: "cartpole".into(), her: None, ..resume }).unwrap().unwrap();

        assert!(metrics_without_time(&whole).len() > 50);
        assert_eq!(metrics_without_time(&whole), metrics_without_time(&split));
        assert_eq!(resumed.eval_success_rate, summary.eval_success_rate);
        assert_eq!(resumed.gradient_updates, summary.gradient_updates);
        assert_eq!(resumed.first_solved_step, summary.first_solved_step);

        // The same with eight CartPoles stepped together (`n_envs`), in this
        // test because the interrupt flag is process-wide.
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
        // 2,000 steps in vector steps of 8, one update per environment step after 200 steps.
        assert_eq!(summary.total_steps, 2_000);
        assert_eq!(summary.gradient_updates, 2_000 - 200);
        flag.store(true, Ordering::SeqCst);
        let stopped = train(&vec_args(&split));
        flag.store(false, Ordering::SeqCst);
        assert!(stopped.unwrap().is_none());
        let resumed =
            train(&TrainArgs { resume: Some(split.clone()), ..vec_args(Path::new("unused")) }).unwrap().unwrap();
        assert_eq!(metrics_without_time(&whole), metrics_without_time(&split));
        assert_eq!(resumed.eval_mean_return, summary.eval_mean_return);
    }

    #[test]
    fn her_on_cartpole_and_unknown_config_keys_are_errors() {
        let tmp = tempfile::TempDir::new().unwrap();
        let dir = tmp.path().join("run");
        let err = train(&TrainArgs { env: "cartpole".into(), ..args(&dir) }).unwrap_err();
        assert!(err.to_string().contains("--her needs a goal environment"), "{err}");
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("bad.toml");
        fs::write(&config, "learning_rate = 1e-3\nlearning_rat = 2\n").unwrap();
        let err = train(&TrainArgs { config: Some(config), ..args(&dir) }).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("bad.toml") && message.contains("learning_rat"), "{message}");
    }
}
