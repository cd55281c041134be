//! CartPole-v1 alone and eight at once: a hand-written controller, episode
//! returns, and a `VecEnv` stepped across threads with same-step auto-reset.
//!
//! `cargo run --release -p rlhf-env --example cartpole_vec`

use rlhf_env::{CartPole, Env, VecEnv, check_env};

/// Push towards the side the pole is falling to.
fn controller(obs: &[f32; 4]) -> usize {
    usize::from(obs[2] + 0.5 * obs[3] > 0.0)
}

fn main() -> Result<(), rlhf_env::EnvError> {
    let mut env = CartPole::v1();
    println!("{}: observations {}, actions {}", env.id(), env.observation_space(), env.action_space());
    println!(
        "check_env: {}",
        check_env(&mut CartPole::v1(), 0, 10, 10_000)
            .map_err(|e| rlhf_env::EnvError::InvalidConfig { field: "check_env", reason: e.to_string() })?
    );

    let (mut obs, ()) = env.reset(Some(42));
    let mut episode_return = 0.0;
    loop {
        let step = env.step(controller(&obs))?;
        episode_return += step.reward;
        obs = step.obs;
        if step.done() {
            break;
        }
    }
    println!("one episode with the controller: return {episode_return}");

    let mut envs = VecEnv::from_fn(8, |_| CartPole::v1())?.with_threads(true);
    let mut observations: Vec<[f32; 4]> = envs.reset(Some(0)).iter().map(|slot| slot.obs).collect();
    let (mut returns, mut finished) = (vec![0.0; 8], Vec::new());
    for _ in 0..2_000 {
        let actions: Vec<usize> = observations.iter().map(controller).collect();
        for (i, slot) in envs.step(&actions)?.iter().enumerate() {
            returns[i] += slot.reward;
            if slot.done() {
                finished.push(returns[i]);
                returns[i] = 0.0;
            }
            observations[i] = slot.obs;
        }
    }
    let mean = finished.iter().sum::<f64>() / finished.len().max(1) as f64;
    println!("8 environments, 2,000 vector steps: {} episodes, mean return {mean:.1}", finished.len());
    Ok(())
}
