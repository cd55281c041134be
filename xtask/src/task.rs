//! What `train`, `eval` and `bench` can run: the environments DQN trains on
//! (each with its default config and its meaning of "solved") and the
//! backends (`--device`).

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use clap::ValueEnum;
use rlhf_algo::dqn::{Dqn, DqnConfig, FlatObs};
use rlhf_algo::{AlgoError, EvalReport};
use rlhf_env::envs::cartpole::V1_MAX_EPISODE_STEPS;
use rlhf_env::{
    BitFlipping, CartPole, CartPoleConfig, Discrete, Env, EpisodeOutcome, FourRooms, GoalEnv, GoalObs, Snapshot,
    TimeLimit,
};

/// A mean greedy return at or above this over the evaluation episodes solves CartPole-v1.
pub const CARTPOLE_SOLVED: f64 = 475.0;
/// A greedy success rate at or above this solves a goal task.
pub const GOAL_SOLVED: f64 = 0.99;

/// An environment DQN runs on from the command line.
pub trait Task:
    Env<Action = usize, ActionSpace = Discrete, Obs: FlatObs + Send, Info: EpisodeOutcome + Send> + Snapshot + Send + Sized
{
    /// The config used when no `--config` is given.
    fn default_config(&self) -> DqnConfig;

    /// A fresh copy with the same configuration (for evaluation).
    fn fresh(&self) -> anyhow::Result<Self>;

    /// The environment's configuration, for `config.json`.
    fn describe(&self) -> serde_json::Value;

    /// An untrained agent for this task.
    fn new_agent<B: AutodiffBackend>(&self, config: DqnConfig, device: B::Device) -> Result<Dqn<B>, AlgoError>;

    /// A training checkpoint resumed on this task (restoring its state).
    fn load_agent<B: AutodiffBackend>(&mut self, dir: &Path, device: B::Device) -> Result<Dqn<B>, AlgoError>;

    /// Values the network reads.
    fn network_input_dim(&self) -> usize;

    /// Writes the network input for `obs` into `input`.
    fn network_input(obs: &Self::Obs, input: &mut Vec<f32>);

    /// Whether an evaluation solves the task.
    fn solved(report: &EvalReport) -> bool;

    /// Whether training may stop early after this evaluation (by default
    /// when it solves the task).
    fn done_training(report: &EvalReport) -> bool {
        Self::solved(report)
    }

    /// Whether the confirming evaluation (ten times the episodes) lets
    /// training stop (by default when it solves the task).
    fn confirms_stop(report: &EvalReport) -> bool {
        Self::solved(report)
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

    fn load_agent<B: AutodiffBackend>(&mut self, dir: &Path, device: B::Device) -> Result<Dqn<B>, AlgoError> {
        Dqn::load(dir, self, device)
    }

    fn network_input_dim(&self) -> usize {
        self.observation_space().flat_dim()
    }

    fn network_input(obs: &[f32; 4], input: &mut Vec<f32>) {
        input.clear();
        input.extend_from_slice(obs);
    }

    fn solved(report: &EvalReport) -> bool {
        report.mean_return >= CARTPOLE_SOLVED
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

            fn load_agent<B: AutodiffBackend>(&mut self, dir: &Path, device: B::Device) -> Result<Dqn<B>, AlgoError> {
                Dqn::load_goal(dir, self, device)
            }

            fn network_input_dim(&self) -> usize {
                self.observation_dim() + self.goal_dim()
            }

            fn network_input(obs: &GoalObs, input: &mut Vec<f32>) {
                input.clear();
                input.extend_from_slice(&obs.observation);
                input.extend_from_slice(&obs.desired_goal);
            }

            fn solved(report: &EvalReport) -> bool {
                report.success_rate.is_some_and(|rate| rate >= GOAL_SOLVED)
            }

            /// Every evaluation episode succeeded: a policy that only just
            /// reaches 0.99 on one sample of 100 episodes often scores 0.96
            /// on the next, so training goes on until it is clearly solved.
            fn done_training(report: &EvalReport) -> bool {
                report.success_rate.is_some_and(|rate| rate >= 1.0)
            }

            /// At most 5 failures in 1,000 episodes: a policy at 0.99 scores
            /// 0.98 on the next 100 episodes about one time in four.
            fn confirms_stop(report: &EvalReport) -> bool {
                report.success_rate.is_some_and(|rate| rate >= 0.995)
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
