//! Your own environment: implement `Env` (and `Snapshot`, so training can
//! be resumed), validate it with `check_env`, and train DQN on it.
//!
//! The task: a walker on a line of 9 cells starts in the middle and must
//! reach the right end; each step costs 0.1, arriving pays 1.
//!
//! `cargo run --release -p rlhf-algo --example custom_env`

use rlhf_algo::callbacks::EvalCallback;
use rlhf_algo::dqn::{Dqn, DqnConfig};
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_index};
use rlhf_env::{BoxSpace, Discrete, Env, EnvError, Snapshot, Step, TimeLimit, check_env};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use serde::{Deserialize, Serialize};

const CELLS: usize = 9;

/// The walker's whole state: where it is, and its generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WalkState {
    position: usize,
    rng: EnvRng,
}

#[derive(Debug)]
struct Walk {
    state: WalkState,
    observation_space: BoxSpace,
    action_space: Discrete,
}

impl Walk {
    fn new() -> Self {
        Self {
            state: WalkState { position: CELLS / 2, rng: seeded_rng(0) },
            observation_space: BoxSpace::new(vec![0.0], vec![1.0], vec![1]).expect("a valid box"),
            action_space: Discrete::new(2).expect("two actions"),
        }
    }

    fn observe(&self) -> [f32; 1] {
        [self.state.position as f32 / (CELLS - 1) as f32]
    }
}

impl Env for Walk {
    type Obs = [f32; 1];
    type Action = usize;
    type Info = ();
    type ObsSpace = BoxSpace;
    type ActionSpace = Discrete;

    fn id(&self) -> &str {
        "Walk-v0"
    }

    fn observation_space(&self) -> &BoxSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &Discrete {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> ([f32; 1], ()) {
        if let Some(seed) = seed {
            self.state.rng = seeded_rng(seed);
        }
        // Start one cell either side of the middle.
        self.state.position = CELLS / 2 - 1 + 2 * uniform_index(&mut self.state.rng, 2);
        (self.observe(), ())
    }

    fn step(&mut self, action: usize) -> Result<Step<[f32; 1], ()>, EnvError> {
        if action >= 2 {
            let (env, space) = (self.id().to_owned(), self.action_space.to_string());
            return Err(EnvError::InvalidAction { env, action: format!("{action}"), space });
        }
        self.state.position = if action == 1 { self.state.position + 1 } else { self.state.position.saturating_sub(1) };
        let arrived = self.state.position == CELLS - 1;
        let reward = if arrived { 1.0 } else { -0.1 };
        Ok(Step { obs: self.observe(), reward, terminated: arrived, truncated: false, info: () })
    }
}

impl Snapshot for Walk {
    type State = WalkState;

    fn snapshot(&self) -> WalkState {
        self.state.clone()
    }

    fn restore(&mut self, state: WalkState) {
        self.state = state;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Episodes must end: a time limit cuts a wandering walker (truncated, not terminated).
    let make = || TimeLimit::new(Walk::new(), 50);
    let report = check_env(&mut make(), 0, 20, 1_000)?;
    println!("check_env: {report}");

    let config = DqnConfig {
        total_timesteps: 5_000,
        learning_starts: 500,
        train_freq: 4,
        gradient_steps: 1,
        ..DqnConfig::default()
    };
    let mut env = make();
    let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device())?;
    let mut eval = EvalCallback::new(make(), 1_000, 20, 7);
    agent.learn(&mut env, 5_000, &mut [&mut eval])?;
    for (step, report) in eval.reports() {
        // The best mean return is 0.7: 0.8 from cell 5 (three steps), 0.6 from cell 3 (five).
        println!("step {step:>5}: greedy return {:.2}", report.mean_return);
    }
    Ok(())
}
