//! What the commands can run: the registry of environments ([`with_task`],
//! each with its default config, its meaning of "solved", its checks and
//! pictures) and the backends (`--device`).
//!
//! Adding an environment: its file under `crates/rlhf-env/src/envs/`, its
//! id in `rlhf_env::EnvId`, a [`Task`] impl below and one arm in
//! [`with_task`]; `env-info`, `check-env`, `train` and `eval` then know it.

use std::path::Path;

use anyhow::Context;
use rlhf_env::render::{DEFAULT_SIZE, save_gif, save_png};

use burn::tensor::backend::AutodiffBackend;
use clap::ValueEnum;
use rlhf_algo::AlgoError;
use rlhf_algo::callbacks::Threshold;
use rlhf_algo::dqn::{Dqn, DqnConfig, FlatObs};
use rlhf_env::envs::cartpole::V1_MAX_EPISODE_STEPS;
use rlhf_env::{
    BitFlipping, CartPole, CartPoleConfig, Discrete, Env, EnvId, EpisodeOutcome, FourRooms, GoalEnv, Snapshot,
    TimeLimit, VecEnv,
};

/// A mean greedy return at or above this over the evaluation episodes solves CartPole-v1.
pub const CARTPOLE_SOLVED: f64 = 475.0;
/// A greedy success rate at or above this solves a goal task.
pub const GOAL_SOLVED: f64 = 0.99;

/// An environment DQN runs on from the command line.
pub trait Task:
    Env<
        Action = usize,
        ActionSpace = Discrete,
        Obs: FlatObs + PartialEq + Send,
        Info: EpisodeOutcome + Send,
        ObsSpace: std::fmt::Display,
    > + Snapshot
    + Send
    + Sized
    + 'static
{
    /// The config used when no `--config` is given.
    fn default_config(&self) -> DqnConfig;

    /// A fresh copy with the same configuration (for evaluation).
    fn fresh(&self) -> anyhow::Result<Self>;

    /// The environment's configuration, for `config.json`.
    fn describe(&self) -> serde_json::Value;

    /// An untrained agent for this task.
    fn new_agent<B: AutodiffBackend>(&self, config: DqnConfig, device: B::Device) -> Result<Dqn<B>, AlgoError>;

    /// A training checkpoint resumed on copies of this task (restoring their state).
    fn load_agent<B: AutodiffBackend>(
        dir: &Path,
        envs: &mut VecEnv<Self>,
        device: B::Device,
    ) -> Result<Dqn<B>, AlgoError>;

    /// Values the network reads.
    fn network_input_dim(&self) -> usize;

    /// Validates the environment (`check_env`, and for goal tasks
    /// `check_goal_env`); the report in words.
    fn check(&mut self, seed: u64, episodes: usize) -> anyhow::Result<String> {
        Ok(rlhf_env::check_env(self, seed, episodes, 10_000)?.to_string())
    }

    /// Pictures of an episode played by `act` (first reset seeded with
    /// `seed`): its first frame as a PNG, the whole of it as a GIF.
    fn record(
        &mut self,
        act: &mut dyn FnMut(&Self::Obs) -> usize,
        seed: u64,
        png: Option<&Path>,
        gif: Option<&Path>,
    ) -> anyhow::Result<()> {
        let _ = (act, seed);
        anyhow::ensure!(png.is_none() && gif.is_none(), "pictures (--png, --gif) are drawn for CartPole only");
        Ok(())
    }

    /// When an evaluation solves the task.
    fn solved_threshold() -> Threshold;

    /// When training may stop early after an evaluation (by default when it solves the task).
    fn stop_threshold() -> Threshold {
        Self::solved_threshold()
    }

    /// What the confirming evaluation (ten times the episodes) must reach
    /// to let training stop (by default what solves the task).
    fn confirm_threshold() -> Threshold {
        Self::solved_threshold()
    }
}

impl Task for TimeLimit<CartPole> {
    fn default_config(&self) -> DqnConfig {
        DqnConfig::default()
    }

    fn fresh(&self) -> anyhow::Result<Self> {
        Ok(TimeLimit::new(CartPole::new(*self.inner().config())?, V1_MAX_EPISODE_STEPS))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value::<&CartPoleConfig>(self.inner().config()).unwrap_or_default()
    }

    fn new_agent<B: AutodiffBackend>(&self, config: DqnConfig, device: B::Device) -> Result<Dqn<B>, AlgoError> {
        Dqn::for_env(config, self, device)
    }

    fn load_agent<B: AutodiffBackend>(
        dir: &Path,
        envs: &mut VecEnv<Self>,
        device: B::Device,
    ) -> Result<Dqn<B>, AlgoError> {
        Dqn::load_vec(dir, envs, device)
    }

    fn network_input_dim(&self) -> usize {
        self.observation_space().flat_dim()
    }

    fn solved_threshold() -> Threshold {
        Threshold::MeanReturn(CARTPOLE_SOLVED)
    }

    fn record(
        &mut self,
        act: &mut dyn FnMut(&[f32; 4]) -> usize,
        seed: u64,
        png: Option<&Path>,
        gif: Option<&Path>,
    ) -> anyhow::Result<()> {
        if png.is_none() && gif.is_none() {
            return Ok(());
        }
        let (mut obs, ()) = self.reset(Some(seed));
        let mut scenes = vec![self.inner().scene()];
        loop {
            let step = self.step(act(&obs))?;
            scenes.push(self.inner().scene());
            if step.done() {
                break;
            }
            obs = step.obs;
        }
        if let Some(path) = png {
            save_png(&scenes[0], path, DEFAULT_SIZE).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("First frame written to {}", path.display());
        }
        if let Some(path) = gif {
            // tau = 0.02 s per step: 20 ms a frame plays the episode in real time.
            save_gif(&scenes, path, DEFAULT_SIZE, 20).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{} frames written to {}", scenes.len(), path.display());
        }
        Ok(())
    }
}

/// Goal tasks share everything but how they are built.
macro_rules! goal_task {
    ($env:ty, $config:expr, $describe:expr, $fresh:expr) => {
        impl Task for $env {
            fn default_config(&self) -> DqnConfig {
                let config: fn(&Self) -> DqnConfig = $config;
                config(self)
            }

            fn fresh(&self) -> anyhow::Result<Self> {
                let fresh: fn(&Self) -> Result<Self, rlhf_env::EnvError> = $fresh;
                Ok(fresh(self)?)
            }

            fn describe(&self) -> serde_json::Value {
                let describe: fn(&Self) -> serde_json::Value = $describe;
                describe(self)
            }

            fn new_agent<B: AutodiffBackend>(&self, config: DqnConfig, device: B::Device) -> Result<Dqn<B>, AlgoError> {
                Dqn::for_goal_env(config, self, device)
            }

            fn load_agent<B: AutodiffBackend>(
                dir: &Path,
                envs: &mut VecEnv<Self>,
                device: B::Device,
            ) -> Result<Dqn<B>, AlgoError> {
                Dqn::load_goal_vec(dir, envs, device)
            }

            fn network_input_dim(&self) -> usize {
                self.observation_dim() + self.goal_dim()
            }

            fn solved_threshold() -> Threshold {
                Threshold::SuccessRate(GOAL_SOLVED)
            }

            fn check(&mut self, seed: u64, episodes: usize) -> anyhow::Result<String> {
                let env = rlhf_env::check_env(self, seed, episodes, 10_000)?;
                let goals = rlhf_env::check_goal_env(self, seed, episodes)?;
                Ok(format!(
                    "{env}; every reward is compute_reward of its goals over {} episodes, {} steps ({} reached their goal)",
                    goals.episodes, goals.steps, goals.successes
                ))
            }

            /// Every evaluation episode succeeded: a policy that only just
            /// reaches 0.99 on one sample of 100 episodes often scores 0.96
            /// on the next, so training goes on until it is clearly solved.
            fn stop_threshold() -> Threshold {
                Threshold::SuccessRate(1.0)
            }

            /// At most 5 failures in 1,000 episodes: a policy at 0.99 scores
            /// 0.98 on the next 100 episodes about one time in four.
            fn confirm_threshold() -> Threshold {
                Threshold::SuccessRate(0.995)
            }
        }
    };
}

goal_task!(
    BitFlipping,
    |env| DqnConfig::bit_flipping_for(env.n_bits()),
    |env| serde_json::json!({ "n_bits": env.n_bits(), "max_steps": env.max_steps() }),
    |env| { BitFlipping::new(env.n_bits())?.with_max_steps(env.max_steps()) }
);
goal_task!(
    FourRooms,
    |_| DqnConfig::bit_flipping(),
    |env| serde_json::json!({ "size": env.size(), "max_steps": env.max_steps() }),
    |env| { FourRooms::new(env.size())?.with_max_steps(env.max_steps()) }
);

/// Runs `job` on the task `env` names, built with `cartpole`'s physics for
/// CartPole: the one registry of the environments the commands know.
pub fn with_task<J: TaskJob>(env: EnvId, cartpole: &CartPoleConfig, job: J) -> anyhow::Result<J::Output> {
    match env {
        EnvId::CartPoleV1 => job.run(TimeLimit::new(CartPole::new(*cartpole)?, V1_MAX_EPISODE_STEPS)),
        EnvId::BitFlipping { n_bits } => job.run(BitFlipping::new(n_bits)?),
        EnvId::FourRooms { size } => job.run(FourRooms::new(size)?),
        other => anyhow::bail!("no command knows {other} yet: give it a Task in xtask/src/task.rs"),
    }
}

/// Work on one task, whichever it is.
pub trait TaskJob {
    /// What the job returns.
    type Output;

    /// Runs on `env`.
    fn run<E: Task>(self, env: E) -> anyhow::Result<Self::Output>;
}

/// Where networks run (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Device {
    /// The default CPU backend, burn-flex.
    #[default]
    Cpu,
    /// burn-ndarray on the CPU.
    Ndarray,
    /// burn-wgpu on the GPU (needs the `wgpu` feature: `cargo run -p xtask --features wgpu -- ...`).
    Wgpu,
}

/// Work generic over the backend, run on the one `--device` picks.
pub trait BackendJob {
    /// What the job returns.
    type Output;

    /// Runs on backend `B`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Self::Output>;
}

impl Device {
    /// The name of the backend it runs, as checkpoints record it.
    pub fn backend_name(self) -> &'static str {
        match self {
            Device::Cpu => "flex",
            Device::Ndarray => "ndarray",
            Device::Wgpu => "wgpu",
        }
    }

    /// Runs `job` on this device's backend.
    pub fn run<J: BackendJob>(self, job: J) -> anyhow::Result<J::Output> {
        use burn::backend::Autodiff;
        match self {
            Device::Cpu => job.run::<Autodiff<burn::backend::Flex>>(Default::default()),
            Device::Ndarray => job.run::<Autodiff<burn::backend::NdArray>>(Default::default()),
            // Without a GPU (or a Vulkan driver), cubecl panics while looking
            // for an adapter; that becomes an error here.
            #[cfg(feature = "wgpu")]
            Device::Wgpu => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job.run::<Autodiff<burn::backend::Wgpu>>(Default::default())
            }))
            .unwrap_or_else(|_| {
                anyhow::bail!("the wgpu backend failed (no GPU adapter or Vulkan driver found?); see the message above")
            }),
            #[cfg(not(feature = "wgpu"))]
            Device::Wgpu => anyhow::bail!(
                "this build has no wgpu backend; rebuild with the feature: `cargo run -p xtask --features wgpu -- ...`"
            ),
        }
    }
}
