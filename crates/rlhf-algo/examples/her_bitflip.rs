//! Hindsight experience replay on bit flipping (Andrychowicz et al. 2017):
//! 15 bits, where random actions almost never reach the goal, learned in
//! a few thousand steps because failed episodes are relabeled with the
//! goals they did reach.
//!
//! `cargo run --release -p rlhf-algo --example her_bitflip`

use rlhf_algo::callbacks::{EvalCallback, StopOnThreshold, Threshold};
use rlhf_algo::dqn::{Dqn, DqnConfig};
use rlhf_env::BitFlipping;
use rlhf_model::backend::{AutodiffCpu, cpu_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_bits = 15;
    // `future` goals, k = 4. (`n_steps: 3` would sum three rewards under each
    // relabeled goal: slower here and at 30 bits, faster at 50; docs/BENCHMARKS.md.)
    let config = DqnConfig { total_timesteps: 20_000, ..DqnConfig::bit_flipping_for(n_bits) };
    let mut env = BitFlipping::new(n_bits)?;
    let mut agent = Dqn::<AutodiffCpu>::for_goal_env(config, &env, cpu_device())?;

    let mut eval = EvalCallback::new(BitFlipping::new(n_bits)?, 1_000, 100, 42);
    let mut stop = StopOnThreshold::new(Threshold::SuccessRate(0.99));
    agent.learn(&mut env, 20_000, &mut [&mut eval, &mut stop])?;
    for (step, report) in eval.reports() {
        println!("step {step:>6}: greedy success rate {:.2}", report.success_rate.unwrap_or(0.0));
    }
    Ok(())
}
