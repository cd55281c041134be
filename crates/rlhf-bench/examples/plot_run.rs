//! Draws the learning curve of a training run from its `metrics.csv`, the
//! way `cargo xtask train` draws `learning_curve.png`.
//!
//! `cargo run -p rlhf-bench --example plot_run -- runs/dqn-cartpole/metrics.csv curve.png`
//! (without arguments it trains a short CartPole run first and plots that).

use std::path::PathBuf;

use rlhf_algo::callbacks::{EvalCallback, MetricsCallback, read_metrics};
use rlhf_algo::dqn::{Dqn, DqnConfig};
use rlhf_bench::plot_learning_curve;
use rlhf_env::CartPole;
use rlhf_model::backend::{AutodiffCpu, cpu_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scratch = std::env::temp_dir().join("rlhf-example-plot-run");
    let metrics = match args.next() {
        Some(path) => PathBuf::from(path),
        None => {
            std::fs::create_dir_all(&scratch)?;
            let path = scratch.join("metrics.csv");
            let mut env = CartPole::v1();
            let mut agent = Dqn::<AutodiffCpu>::for_env(DqnConfig::default(), &env, cpu_device())?;
            let mut rows = MetricsCallback::new(&path, 500);
            let mut eval = EvalCallback::new(CartPole::v1(), 2_500, 10, 1);
            agent.learn(&mut env, 10_000, &mut [&mut rows, &mut eval])?;
            path
        }
    };
    let out = args.next().map_or_else(|| scratch.join("learning_curve.png"), PathBuf::from);

    // Columns are read by name, so the plot survives new columns.
    let rows = read_metrics(&metrics)?;
    let episodes: Vec<(u64, f64)> = rows.iter().filter_map(|r| Some((r.step, r.episode_return?))).collect();
    let evaluations: Vec<(u64, f64)> = rows.iter().filter_map(|r| Some((r.step, r.eval_mean_return?))).collect();
    plot_learning_curve(&out, "DQN on CartPole-v1", &episodes, &evaluations)?;
    println!("{} episodes, {} evaluations drawn to {}", episodes.len(), evaluations.len(), out.display());
    Ok(())
}
