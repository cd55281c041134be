//! DQN on CartPole-v1: a fast smoke run that must clearly beat a random
//! policy, and bit-for-bit reproducibility.

use rlhf_algo::callbacks::{TrainEvent, observer};
use rlhf_algo::dqn::{Dqn, DqnConfig};
use rlhf_algo::{RandomPolicy, evaluate};
use rlhf_env::{CartPole, Env};
use rlhf_model::backend::{AutodiffCpu, cpu_device};

fn small_config(seed: u64, total_timesteps: u64) -> DqnConfig {
    DqnConfig {
        seed,
        total_timesteps,
        learning_rate: 1e-3,
        buffer_size: 10_000,
        learning_starts: 500,
        batch_size: 64,
        train_freq: 4,
        gradient_steps: 1,
        target_update_interval: 250,
        exploration_fraction: 0.3,
        exploration_final_eps: 0.05,
        net_arch: vec![64, 64],
        ..DqnConfig::default()
    }
}

fn train(config: DqnConfig, chunks: &[u64]) -> (Dqn<AutodiffCpu>, Vec<TrainEvent>) {
    let mut env = CartPole::v1();
    let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device()).unwrap();
    let mut events = Vec::new();
    for &steps in chunks {
        agent.learn(&mut env, steps, &mut [&mut observer(|e| events.push(e.clone()))]).unwrap();
    }
    (agent, events)
}

#[test]
fn smoke_run_clearly_beats_a_random_policy() {
    let total = 12_000;
    let (agent, _) = train(small_config(1, total), &[total]);
    let mut eval_env = CartPole::v1();
    let trained = agent.evaluate(&mut eval_env, 10, 777).unwrap();
    let mut random = RandomPolicy::new(*eval_env.action_space(), 0);
    let baseline = evaluate(&mut eval_env, &mut random, 10, 777).unwrap();
    assert!(baseline.mean_return < 40.0, "random policy: {}", baseline.mean_return);
    // Seeds 1 to 6 of this budget reached 90 to 236 when it was written
    // (seed 1: 200); a random policy averages about 22.
    assert!(trained.mean_return >= 80.0, "trained {} vs random {}", trained.mean_return, baseline.mean_return);
}

#[test]
fn same_seed_same_run_and_chunked_learning_equals_one_call() {
    let total = 1_500;
    let (agent_a, events_a) = train(small_config(3, total), &[total]);
    let (agent_b, events_b) = train(small_config(3, total), &[700, 300, 500]);
    assert_eq!(events_a, events_b);
    assert!(events_a.iter().any(|e| matches!(e, TrainEvent::Train { .. })), "updates happened");
    let mut host_a = agent_a.greedy_policy();
    let mut host_b = agent_b.greedy_policy();
    let obs = [0.01, -0.2, 0.03, 0.4];
    assert_eq!(host_a.q_values(&obs).unwrap().to_vec(), host_b.q_values(&obs).unwrap().to_vec());
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let total = 1_500;
    let config = small_config(5, total);
    let (uninterrupted, expected_events) = train(config.clone(), &[total]);

    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("checkpoint");
    let mut events = Vec::new();
    {
        let mut env = CartPole::v1();
        let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device()).unwrap();
        // Stop mid-episode, after updates began (learning_starts 500, train_freq 4)
        // and between target updates (every 250 steps).
        agent.learn(&mut env, 777, &mut [&mut observer(|e| events.push(e.clone()))]).unwrap();
        agent.save(&dir, &env, &[]).unwrap();
    }
    let mut env = CartPole::v1();
    let mut resumed = Dqn::<AutodiffCpu>::load(&dir, &mut env, cpu_device()).unwrap();
    resumed.learn(&mut env, total - 777, &mut [&mut observer(|e| events.push(e.clone()))]).unwrap();

    assert_eq!(events, expected_events);
    assert_eq!(resumed.gradient_updates(), uninterrupted.gradient_updates());
    let obs = [0.02, 0.1, -0.03, -0.2];
    assert_eq!(
        resumed.greedy_policy().q_values(&obs).unwrap().to_vec(),
        uninterrupted.greedy_policy().q_values(&obs).unwrap().to_vec()
    );

    // A damaged training state is refused with the file named.
    let replay = dir.join("replay.bin");
    let bytes = std::fs::read(&replay).unwrap();
    std::fs::write(&replay, &bytes[..bytes.len() - 3]).unwrap();
    let err = Dqn::<AutodiffCpu>::load(&dir, &mut CartPole::v1(), cpu_device()).err().unwrap();
    assert!(err.to_string().contains("replay.bin") && err.to_string().contains("truncated"), "{err}");
}
