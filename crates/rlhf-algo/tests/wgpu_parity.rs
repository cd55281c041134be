//! The GPU backend (burn-wgpu) computes what the default CPU backend
//! (burn-flex) computes: the same weights give the same Q-values, one DQN
//! gradient step gives the same new weights, a short training run the same
//! greedy actions, and checkpoints move between the two.
//!
//! Built only with the `wgpu` feature: `cargo xtask test-gpu` runs it (the
//! wgpu build is too slow for CI's default suite). Without a GPU, Mesa's
//! software Vulkan driver (lavapipe, Debian's `mesa-vulkan-drivers`) runs it
//! on the CPU.
//!
//! Tolerance: the two backends sum products in different orders (and GPUs
//! may fuse multiply-adds), so values are compared within
//! `REL_TOL · max(1, |cpu value|)`.
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use rlhf_algo::dqn::{Dqn, DqnConfig, LossKind, UpdatePath};
use rlhf_algo::replay::HerConfig;
use rlhf_env::rng::{seeded_rng, uniform_f64};
use rlhf_env::{BitFlipping, CartPole};
use rlhf_model::{QNetwork, QNetworkConfig, argmax};
use tempfile::TempDir;

type Cpu = Autodiff<Flex>;
type Gpu = Autodiff<Wgpu>;

/// Relative tolerance of every comparison.
const REL_TOL: f32 = 1e-4;

fn gpu() -> burn::tensor::Device<Gpu> {
    Default::default()
}

fn cpu() -> burn::tensor::Device<Cpu> {
    Default::default()
}

/// `n` CartPole-like states spread over the observation bounds, from a seed.
fn states(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = seeded_rng(seed);
    (0..n * dim).map(|_| uniform_f64(&mut rng, -2.0, 2.0) as f32).collect()
}

fn q_values<B: Backend>(net: &QNetwork<B>, obs: &[f32], dim: usize) -> Vec<f32> {
    let device = net.devices().into_iter().next().unwrap_or_default();
    let input = Tensor::<B, 2>::from_data(TensorData::new(obs.to_vec(), [obs.len() / dim, dim]), &device);
    net.forward(input).into_data().to_vec::<f32>().unwrap()
}

/// Every float parameter, flattened, in visiting order.
fn params<B: Backend>(net: &QNetwork<B>) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.extend(param.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    net.visit(&mut collect);
    collect.0
}

/// Asserts `gpu` equals `cpu` elementwise within the tolerance, and returns
/// the largest relative difference seen.
fn assert_close(what: &str, cpu: &[f32], gpu: &[f32]) -> f32 {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
    let mut worst = 0.0f32;
    for (i, (&c, &g)) in cpu.iter().zip(gpu).enumerate() {
        let diff = (c - g).abs() / c.abs().max(1.0);
        assert!(diff <= REL_TOL, "{what}[{i}]: cpu {c}, gpu {g} (relative difference {diff})");
        worst = worst.max(diff);
    }
    eprintln!("{what}: {} values, largest relative difference {worst:e}", cpu.len());
    worst
}

#[test]
fn same_weights_give_the_same_q_values() {
    for (hidden, dueling) in [(vec![64, 64], false), (vec![256, 256], false), (vec![64], true)] {
        let config = QNetworkConfig::new(4, 2).with_hidden(hidden.clone()).with_dueling(dueling);
        let on_cpu = config.init::<Flex>(&Default::default(), 7);
        let on_gpu = config.init::<Wgpu>(&Default::default(), 7);
        assert_eq!(params(&on_cpu), params(&on_gpu), "the same seed gives bit-identical weights");
        let obs = states(512, 4, 1);
        assert_close(
            &format!("Q {hidden:?} dueling {dueling}"),
            &q_values(&on_cpu, &obs, 4),
            &q_values(&on_gpu, &obs, 4),
        );
    }
}

fn cartpole_config(seed: u64) -> DqnConfig {
    DqnConfig {
        seed,
        total_timesteps: 3_000,
        learning_rate: 1e-3,
        buffer_size: 10_000,
        learning_starts: 500,
        batch_size: 64,
        train_freq: 4,
        gradient_steps: 1,
        target_update_interval: 250,
        exploration_fraction: 0.3,
        net_arch: vec![64, 64],
        // burn's kernels on both sides: these tests compare the backends.
        update: UpdatePath::Burn,
        ..DqnConfig::default()
    }
}

/// Fills both agents' replay with the same `learning_starts` transitions
/// (no update yet, so both act with the same initial network).
fn filled<B: AutodiffBackend>(config: &DqnConfig, device: B::Device) -> Dqn<B> {
    let mut env = CartPole::v1();
    let mut agent = Dqn::<B>::for_env(config.clone(), &env, device).unwrap();
    agent.learn(&mut env, config.learning_starts, &mut []).unwrap();
    assert_eq!(agent.gradient_updates(), 0);
    agent
}

#[test]
fn one_gradient_step_gives_the_same_weights() {
    for loss in [LossKind::Huber, LossKind::Mse] {
        let config = DqnConfig { loss, ..cartpole_config(3) };
        let mut on_cpu = filled::<Cpu>(&config, cpu());
        let mut on_gpu = filled::<Gpu>(&config, gpu());
        let before = params(&on_cpu.online().valid());
        let (loss_cpu, q_cpu) = on_cpu.gradient_step().unwrap();
        let (loss_gpu, q_gpu) = on_gpu.gradient_step().unwrap();
        assert_close("loss and mean Q", &[loss_cpu as f32, q_cpu as f32], &[loss_gpu as f32, q_gpu as f32]);
        let after_cpu = params(&on_cpu.online().valid());
        let after_gpu = params(&on_gpu.online().valid());
        assert_ne!(before, after_cpu, "the step changed the weights");
        assert_close(&format!("weights after one {loss:?} step"), &after_cpu, &after_gpu);
    }
}

#[test]
fn a_short_training_run_gives_the_same_greedy_actions() {
    fn train<B: AutodiffBackend>(config: &DqnConfig, device: B::Device) -> Dqn<B> {
        let mut env = CartPole::v1();
        let mut agent = Dqn::<B>::for_env(config.clone(), &env, device).unwrap();
        agent.learn(&mut env, config.total_timesteps, &mut []).unwrap();
        agent
    }
    let config = cartpole_config(5);
    let on_cpu = train::<Cpu>(&config, cpu());
    let on_gpu = train::<Gpu>(&config, gpu());
    assert_eq!(on_cpu.gradient_updates(), on_gpu.gradient_updates());
    assert!(on_cpu.gradient_updates() > 500, "{} updates", on_cpu.gradient_updates());
    let obs = states(1_000, 4, 2);
    let q_cpu = q_values(&on_cpu.online().valid(), &obs, 4);
    let q_gpu = q_values(&on_gpu.online().valid(), &obs, 4);
    assert_close("Q after 3,000 steps", &q_cpu, &q_gpu);
    let greedy = |q: &[f32]| q.chunks(2).map(argmax).collect::<Vec<_>>();
    // An exact tie within the tolerance could go either way; none occurs here.
    assert_eq!(greedy(&q_cpu), greedy(&q_gpu));
}

#[test]
fn checkpoints_move_between_backends() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    // `auto`: host loops on the CPU, burn on the GPU, one checkpoint format.
    let config = DqnConfig { total_timesteps: 1_500, update: UpdatePath::Auto, ..cartpole_config(9) };
    let mut env = CartPole::v1();
    let mut on_cpu = Dqn::<Cpu>::for_env(config.clone(), &env, cpu()).unwrap();
    on_cpu.learn(&mut env, 1_000, &mut []).unwrap();
    on_cpu.save(&dir.join("cpu"), &env, &[]).unwrap();

    // CPU → GPU: the weights arrive unchanged and training goes on there.
    let mut gpu_env = CartPole::v1();
    let mut on_gpu = Dqn::<Gpu>::load(&dir.join("cpu"), &mut gpu_env, gpu()).unwrap();
    assert_eq!(params(&on_cpu.online().valid()), params(&on_gpu.online().valid()));
    assert_eq!(on_gpu.num_timesteps(), 1_000);
    on_gpu.learn(&mut gpu_env, 500, &mut []).unwrap();
    on_gpu.save(&dir.join("gpu"), &gpu_env, &[]).unwrap();

    // GPU → CPU: same weights, same greedy evaluation.
    let mut back_env = CartPole::v1();
    let back = Dqn::<Cpu>::load(&dir.join("gpu"), &mut back_env, cpu()).unwrap();
    assert_eq!(params(&on_gpu.online().valid()), params(&back.online().valid()));
    let on_gpu_eval = on_gpu.evaluate(&mut CartPole::v1(), 5, 11).unwrap();
    let back_eval = back.evaluate(&mut CartPole::v1(), 5, 11).unwrap();
    assert_eq!(on_gpu_eval.returns, back_eval.returns);
}

#[test]
fn hindsight_replay_trains_on_the_gpu() {
    // Stable-Baselines3's HER test, as the CPU suite runs it (her_bitflip.rs).
    let env = BitFlipping::new(10).unwrap();
    let her = "future:5".parse::<HerConfig>().unwrap();
    let config = DqnConfig { seed: 0, total_timesteps: 1_500, her: Some(her), ..DqnConfig::bit_flipping() };
    let mut agent = Dqn::<Gpu>::for_goal_env(config, &env, gpu()).unwrap();
    let mut train_env = env.clone();
    agent.learn(&mut train_env, 1_500, &mut []).unwrap();
    let report = agent.evaluate(&mut BitFlipping::new(10).unwrap(), 100, 12_345).unwrap();
    let success = report.success_rate.unwrap_or(0.0);
    assert!(success >= 0.9, "greedy success after 1,500 steps: {success}");
}
