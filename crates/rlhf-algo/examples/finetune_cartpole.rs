//! Fine-tuning: train on CartPole-v1, save the network, then tune it on a
//! CartPole with a pole twice as long, starting from the saved weights and
//! against a network trained from scratch for the same budget.
//!
//! `cargo run --release -p rlhf-algo --example finetune_cartpole`

use rlhf_algo::callbacks::{EvalCallback, StopOnThreshold, Threshold};
use rlhf_algo::dqn::{Dqn, DqnConfig};
use rlhf_env::envs::cartpole::V1_MAX_EPISODE_STEPS;
use rlhf_env::{CartPole, CartPoleConfig, TimeLimit};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use rlhf_model::checkpoint::{self, Expectation};

fn long_pole() -> Result<TimeLimit<CartPole>, rlhf_env::EnvError> {
    let config = CartPoleConfig { length: 1.0, ..CartPoleConfig::default() };
    Ok(TimeLimit::new(CartPole::new(config)?, V1_MAX_EPISODE_STEPS))
}

/// Greedy mean return on the long pole after `steps` of training, starting from `start` when given.
fn train_on_long_pole(
    start: Option<rlhf_model::QNetwork<AutodiffCpu>>,
    steps: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let config = DqnConfig {
        total_timesteps: steps,
        learning_starts: if start.is_some() { 500 } else { 1_000 },
        ..DqnConfig::default()
    };
    let mut env = long_pole()?;
    let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device())?;
    if let Some(network) = start {
        agent.init_from(network)?;
    }
    agent.learn(&mut env, steps, &mut [])?;
    Ok(agent.evaluate(&mut long_pole()?, 20, 99)?.mean_return)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("rlhf-example-finetune");
    let mut env = CartPole::v1();
    let mut agent = Dqn::<AutodiffCpu>::for_env(DqnConfig::default(), &env, cpu_device())?;
    let mut eval = EvalCallback::new(CartPole::v1(), 2_500, 10, 1).with_best_model(dir.join("best"));
    let mut stop = StopOnThreshold::new(Threshold::MeanReturn(475.0));
    agent.learn(&mut env, 50_000, &mut [&mut eval, &mut stop])?;
    println!("source task solved in {} steps", agent.num_timesteps());

    let expected = Expectation { env_id: "CartPole-v1", obs_dim: 4, n_actions: 2 };
    let (pretrained, _) = checkpoint::load::<AutodiffCpu>(&dir.join("best"), &expected, &cpu_device())?;
    let budget = 5_000;
    println!("long pole after {budget} steps: fine-tuned {:.1}", train_on_long_pole(Some(pretrained), budget)?);
    println!("long pole after {budget} steps: from scratch {:.1}", train_on_long_pole(None, budget)?);
    Ok(())
}
