//! DQN speed: one gradient step (batch 64, MLP 4-H-H-2, Huber loss, Adam
//! with clipping) for H = 64 and 256, on the default path (host loops on the
//! CPU) and on burn's (`_burn`, the reference), and batch-1 greedy action
//! selection through burn and through the host copy.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p rlhf-bench --bench dqn_update`

use std::hint::black_box;

use burn::tensor::{Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use rlhf_algo::dqn::{Dqn, DqnConfig, UpdatePath};
use rlhf_env::CartPole;
use rlhf_model::QNetworkConfig;
use rlhf_model::backend::{AutodiffCpu, CpuBackend, cpu_device};

fn agent(hidden: usize, update: UpdatePath) -> Dqn<AutodiffCpu> {
    let config = DqnConfig {
        net_arch: vec![hidden, hidden],
        update,
        // Fill the buffer with random play and never train inside `learn`.
        learning_starts: u64::MAX,
        total_timesteps: 10_000,
        ..DqnConfig::default()
    };
    let mut env = CartPole::v1();
    let mut agent = Dqn::<AutodiffCpu>::for_env(config, &env, cpu_device()).unwrap_or_else(|e| panic!("{e}"));
    agent.learn(&mut env, 5_000, &mut []).unwrap_or_else(|e| panic!("{e}"));
    agent
}

fn gradient_step(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let mut group = c.benchmark_group("dqn_gradient_step");
    for hidden in [64, 256] {
        for (update, suffix) in [(UpdatePath::Auto, ""), (UpdatePath::Burn, "_burn")] {
            let mut agent = agent(hidden, update);
            group.bench_function(format!("batch64_{hidden}x{hidden}{suffix}"), |b| {
                b.iter(|| black_box(agent.gradient_step().unwrap_or_else(|e| panic!("{e}"))))
            });
        }
    }
    group.finish();
}

fn greedy_action(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let mut group = c.benchmark_group("greedy_action");
    let obs = [0.01f32, -0.2, 0.03, 0.4];
    for hidden in [64, 256] {
        let net = QNetworkConfig::new(4, 2).with_hidden(vec![hidden, hidden]).init::<CpuBackend>(&cpu_device(), 0);
        group.bench_function(format!("burn_{hidden}x{hidden}"), |b| {
            b.iter(|| {
                let input = Tensor::<CpuBackend, 2>::from_data(TensorData::new(obs.to_vec(), [1, 4]), &cpu_device());
                black_box(net.forward(input).argmax(1).into_scalar())
            })
        });
        let mut host = net.to_host().unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(format!("host_{hidden}x{hidden}"), |b| {
            b.iter(|| black_box(host.greedy_action(black_box(&obs)).unwrap_or(0)))
        });
    }
    group.finish();
}

criterion_group!(benches, gradient_step, greedy_action);
criterion_main!(benches);
