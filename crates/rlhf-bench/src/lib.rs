//! Benchmarks of the workspace.
//!
//! - Speed: criterion benchmarks in the top-level `benches/` folder, declared
//!   here as `[[bench]]` targets (`cargo bench -p rlhf-bench`). `env_step`
//!   measures raw `CartPole::step` and `VecEnv` with 8 and 64 environments,
//!   reported as steps (elements) per second.
//! - Reports: [`plot_learning_curve`] draws a run's episode returns and
//!   evaluations to a PNG (with an embedded font, so it renders anywhere);
//!   [`plot_lines`] labelled lines; [`plot_bands`] estimates with shaded
//!   95% intervals (learning curves over seeds, performance profiles), and
//!   [`plot_band_panels`] several such charts in one picture;
//!   [`plot_confusion`] a confusion-matrix heatmap. [`table`] formats
//!   results over seeds (IQM with interval, from `rlhf_algo::stats`) as cells.
//! - Learning: [`cartpole_controller`] is the fixed policy the speed benchmarks
//!   drive CartPole with, so episodes are long and resets rare, as under a
//!   trained agent. Learning-curve benchmarks join it with the DQN issue.
//! - Serving: [`load`] drives an HTTP server of the assistant's API with
//!   concurrent keep-alive clients and summarises latencies per request kind
//!   (`cargo xtask bench serve`).

mod curve;
pub mod load;
pub mod table;

pub use curve::{
    Band, Line, Panel, PlotError, plot_band_panels, plot_bands, plot_confusion, plot_learning_curve, plot_lines,
};

/// A linear controller that balances CartPole-v1 for the full 500 steps from
/// most reset states: push towards the side the pole falls to, corrected for
/// the cart's drift.
pub fn cartpole_controller(obs: &[f32; 4]) -> usize {
    usize::from(obs[2] + 0.5 * obs[3] + 0.01 * obs[0] + 0.1 * obs[1] > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlhf_algo::evaluate;
    use rlhf_env::CartPole;

    #[test]
    fn controller_reaches_the_time_limit() {
        let mut env = CartPole::v1();
        let report = evaluate(&mut env, &mut |obs: &[f32; 4]| cartpole_controller(obs), 5, 0).unwrap();
        assert_eq!(report.returns, vec![500.0; 5]);
    }
}
