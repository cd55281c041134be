//! Environment stepping speed: raw `CartPole::step` and `VecEnv` with 8 and 64
//! copies (sequential and threaded), in steps per second.
//!
//! `cargo bench -p rlhf-bench --bench env_step`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rlhf_bench::cartpole_controller;
use rlhf_env::{CartPole, Env, VecEnv};

const STEPS: usize = 10_000;

fn cartpole_step(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let mut group = c.benchmark_group("cartpole");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.bench_function("step", |b| {
        let mut env = CartPole::v1();
        let (mut obs, ()) = env.reset(Some(0));
        b.iter(|| {
            for _ in 0..STEPS {
                let Ok(step) = env.step(cartpole_controller(&obs)) else { unreachable!() };
                obs = if step.done() { env.reset(None).0 } else { step.obs };
            }
            black_box(obs)
        });
    });
    group.bench_function("dynamics", |b| {
        let mut state = [0.01, 0.0, 0.02, 0.0];
        let config = rlhf_env::CartPoleConfig::default();
        b.iter(|| {
            for i in 0..STEPS {
                state = CartPole::dynamics(black_box(state), i % 2 == 0, &config);
            }
            black_box(state)
        });
    });
    group.finish();
}

fn vec_env_step(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let mut group = c.benchmark_group("vec_env");
    for n in [8usize, 64] {
        for threaded in [false, true] {
            let rounds = STEPS / n;
            group.throughput(Throughput::Elements((rounds * n) as u64));
            let name = format!("{n}_envs_{}", if threaded { "threaded" } else { "sequential" });
            group.bench_function(name, |b| {
                b.iter_batched_ref(
                    || {
                        let mut vec_env = VecEnv::from_fn(n, |_| CartPole::v1())
                            .unwrap_or_else(|e| panic!("{e}"))
                            .with_threads(threaded);
                        let actions: Vec<usize> =
                            vec_env.reset(Some(0)).iter().map(|s| cartpole_controller(&s.obs)).collect();
                        (vec_env, actions)
                    },
                    |(vec_env, actions)| {
                        for _ in 0..rounds {
                            let Ok(subs) = vec_env.step(actions) else { unreachable!() };
                            for (action, sub) in actions.iter_mut().zip(subs) {
                                *action = cartpole_controller(&sub.obs);
                            }
                        }
                    },
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, cartpole_step, vec_env_step);
criterion_main!(benches);
