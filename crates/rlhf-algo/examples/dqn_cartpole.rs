//! DQN on CartPole-v1 with Stable-Baselines3-style callbacks: evaluate every
//! 2,500 steps, keep the best network, stop once solved.
//!
//! `cargo run --release -p rlhf-algo --example dqn_cartpole`

use rlhf_algo::callbacks::{EvalCallback, ProgressCallback, StopOnThreshold, Threshold};
use rlhf_algo::dqn::{Dqn, DqnConfig};
use rlhf_env::CartPole;
use rlhf_model::backend::{AutodiffCpu, cpu_device};

fn main() -> Result<(), rlhf_algo::AlgoError> {
    let out = std::env::temp_dir().join("rlhf-example-dqn-cartpole");
    let config = DqnConfig { seed: 0, total_timesteps: 50_000, ..DqnConfig::default() };
    let mut env = CartPole::v1();
    let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device())?;

    let mut eval = EvalCallback::new(CartPole::v1(), 2_500, 10, 1_000).with_best_model(out.join("best"));
    let mut stop = StopOnThreshold::new(Threshold::MeanReturn(475.0));
    let mut progress = ProgressCallback::new(50_000, 0);
    let stopped = agent.learn(&mut env, 50_000, &mut [&mut eval, &mut stop, &mut progress])?;
    progress.bar().finish_and_clear();

    let report = agent.evaluate(&mut CartPole::v1(), 100, 7)?;
    println!(
        "{} after {} steps: greedy return {:.1} ± {:.1} over 100 episodes; best network in {}",
        if stopped { "solved" } else { "stopped" },
        agent.num_timesteps(),
        report.mean_return,
        report.std_return,
        out.join("best").display()
    );
    Ok(())
}
