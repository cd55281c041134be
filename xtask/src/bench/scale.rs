//! `cargo xtask bench scale`: throughput at scale.
//!
//! Three measurements, each the mean over at least `--seconds` of repeated
//! calls after one warm-up call (kernels compiled, buffers allocated):
//!
//! - env: `VecEnv` of N CartPoles stepped sequentially and on rayon's
//!   threads, actions from a fixed controller: environment steps per second.
//! - update: one DQN gradient step ([`Dqn::gradient_step`]: sampling, the
//!   copy to the device, target and online forward passes, backward, Adam)
//!   for every batch size and width (two hidden layers), on every backend.
//! - train: [`Dqn::learn_vec`] on N threaded CartPoles, one gradient step of
//!   batch N per vector step: environment steps and updates per second of
//!   the whole loop (acting by one batched forward pass, stepping, storing,
//!   learning).
//!
//! The crossover is the smallest batch at which the GPU backend's samples
//! per second beat every CPU backend's, per width.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use rlhf_algo::dqn::{Dqn, DqnConfig, UpdatePath};
use rlhf_env::{CartPole, TimeLimit, VecEnv};
use serde::Serialize;

use crate::task::{BackendJob, Device};

/// Arguments of `bench scale`.
#[derive(Debug, Clone, Args)]
pub struct ScaleBench {
    /// Numbers of environments stepped together.
    #[arg(long, value_delimiter = ',', default_value = "256,1024,4096")]
    pub envs: Vec<usize>,
    /// Batch sizes of the gradient-step measurements.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024,4096,8192")]
    pub batches: Vec<usize>,
    /// Widths of the two hidden layers.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
    pub widths: Vec<usize>,
    /// Backends to measure [default: cpu,ndarray, and wgpu in a build with the feature].
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<Device>,
    /// Where gradient steps run (`DqnConfig::update`): `auto` (host loops on
    /// the CPU backends, burn on wgpu), `burn` (every backend's own kernels) or `host`.
    #[arg(long, default_value = "auto", value_parser = parse_update)]
    pub update: UpdatePath,
    /// Least wall time per measurement, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Folder of the report.
    #[arg(long, default_value = "runs/bench-scale")]
    pub out: PathBuf,
}

/// `auto`, `burn` or `host`, as a config file spells them.
fn parse_update(value: &str) -> Result<UpdatePath, String> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| format!("`{value}`: expected auto, burn or host"))
}

fn default_devices() -> Vec<Device> {
    let mut devices = vec![Device::Cpu, Device::Ndarray];
    if cfg!(feature = "wgpu") {
        devices.push(Device::Wgpu);
    }
    devices
}

/// What a row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// `VecEnv` stepping alone.
    Env,
    /// One gradient step.
    Update,
    /// The whole large-batch training loop.
    Train,
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleRow {
    /// What was measured.
    pub measure: Measure,
    /// `flex`, `ndarray`, `wgpu`; for env rows `sequential` or `threaded`.
    pub backend: String,
    /// Environments stepped together (0 for update rows).
    pub envs: usize,
    /// Batch size of the gradient steps (0 for env rows).
    pub batch: usize,
    /// Hidden width (0 for env rows).
    pub width: usize,
    /// Gradient steps per second.
    pub updates_per_second: f64,
    /// Environment steps per second.
    pub env_steps_per_second: f64,
    /// Transitions learned from per second (batch × updates per second).
    pub samples_per_second: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct ScaleReport {
    /// Every measurement.
    pub rows: Vec<ScaleRow>,
    /// Per width, the smallest batch where the GPU beats every CPU backend.
    pub crossover: Vec<(usize, Option<usize>)>,
}

/// Mean seconds per call of `f`, over at least `min_seconds` after one warm-up call.
fn seconds_per_call(min_seconds: f64, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let start = Instant::now();
    let mut calls = 0u32;
    while calls == 0 || start.elapsed().as_secs_f64() < min_seconds {
        f()?;
        calls += 1;
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(calls))
}

fn cartpoles(n: usize) -> anyhow::Result<VecEnv<TimeLimit<CartPole>>> {
    Ok(VecEnv::from_fn(n, |_| CartPole::v1())?)
}

fn env_rows(args: &ScaleBench) -> anyhow::Result<Vec<ScaleRow>> {
    let mut rows = Vec::new();
    for &n in &args.envs {
        for threaded in [false, true] {
            let mut envs = cartpoles(n)?.with_threads(threaded);
            let mut actions: Vec<usize> =
                envs.reset(Some(0)).iter().map(|s| rlhf_bench::cartpole_controller(&s.obs)).collect();
            // 100 vector steps per call: long enough to time, short next to an episode.
            let per_call = seconds_per_call(args.seconds, || {
                for _ in 0..100 {
                    let slots = envs.step(&actions)?;
                    for (action, slot) in actions.iter_mut().zip(slots) {
                        *action = rlhf_bench::cartpole_controller(&slot.obs);
                    }
                }
                Ok(())
            })?;
            let steps = (100 * n) as f64 / per_call;
            rows.push(ScaleRow {
                measure: Measure::Env,
                backend: if threaded { "threaded" } else { "sequential" }.into(),
                envs: n,
                batch: 0,
                width: 0,
                updates_per_second: 0.0,
                env_steps_per_second: steps,
                samples_per_second: 0.0,
            });
            eprintln!("env: {n} CartPoles, threaded {threaded}: {steps:.3e} steps/s");
        }
    }
    Ok(rows)
}

/// The measurements of one backend.
struct BackendRows<'a> {
    args: &'a ScaleBench,
    name: String,
}

impl BackendJob for BackendRows<'_> {
    type Output = Vec<ScaleRow>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Vec<ScaleRow>> {
        let (args, mut rows) = (self.args, Vec::new());
        let row = |measure, envs, batch, width, updates_per_second: f64, env_steps_per_second| ScaleRow {
            measure,
            backend: self.name.clone(),
            envs,
            batch,
            width,
            updates_per_second,
            env_steps_per_second,
            samples_per_second: updates_per_second * batch as f64,
        };
        for &width in &args.widths {
            for &batch in &args.batches {
                // A replay of 20,000 random-policy transitions, no update yet.
                let fill = 20_000;
                let config = DqnConfig {
                    net_arch: vec![width, width],
                    batch_size: batch,
                    buffer_size: fill as usize,
                    learning_starts: fill,
                    total_timesteps: fill,
                    update: args.update,
                    ..DqnConfig::default()
                };
                let mut env = CartPole::v1();
                let mut agent = Dqn::<B>::for_env(config, &env, device.clone())?;
                agent.learn(&mut env, fill, &mut [])?;
                let per_update = seconds_per_call(args.seconds, || Ok(agent.gradient_step().map(drop)?))?;
                rows.push(row(Measure::Update, 0, batch, width, 1.0 / per_update, 0.0));
                eprintln!("{}: update, width {width}, batch {batch}: {:.1} updates/s", self.name, 1.0 / per_update);
            }
            for &n in &args.envs {
                let config = DqnConfig {
                    net_arch: vec![width, width],
                    batch_size: n,
                    buffer_size: 1_000_000,
                    learning_starts: n as u64,
                    // One gradient step per vector step (periods count environment steps).
                    train_freq: n as u64,
                    gradient_steps: 1,
                    total_timesteps: 10_000_000,
                    update: args.update,
                    ..DqnConfig::default()
                };
                let mut agent = Dqn::<B>::for_env(config, &CartPole::v1(), device.clone())?;
                let mut envs = cartpoles(n)?.with_threads(true);
                let vec_steps = 10;
                let per_call =
                    seconds_per_call(args.seconds, || Ok(agent.learn_vec(&mut envs, vec_steps, &mut []).map(drop)?))?;
                let updates = vec_steps as f64 / per_call;
                rows.push(row(Measure::Train, n, n, width, updates, updates * n as f64));
                eprintln!(
                    "{}: train, {n} envs, width {width}, batch {n}: {:.3e} env steps/s, {updates:.1} updates/s",
                    self.name,
                    updates * n as f64
                );
            }
        }
        Ok(rows)
    }
}

/// Per width, the smallest batch at which `wgpu` beats every other backend.
fn crossover(rows: &[ScaleRow], widths: &[usize]) -> Vec<(usize, Option<usize>)> {
    let updates = |width: usize| rows.iter().filter(move |r| r.measure == Measure::Update && r.width == width);
    widths
        .iter()
        .map(|&width| {
            let mut batches: Vec<usize> = updates(width).filter(|r| r.backend == "wgpu").map(|r| r.batch).collect();
            batches.sort_unstable();
            let wins = |batch: usize| {
                let at = || updates(width).filter(move |r| r.batch == batch);
                let gpu = at().filter(|r| r.backend == "wgpu").map(|r| r.samples_per_second).fold(0.0, f64::max);
                at().filter(|r| r.backend != "wgpu").all(|r| gpu > r.samples_per_second)
            };
            (width, batches.into_iter().find(|&b| wins(b)))
        })
        .collect()
}

fn table(report: &ScaleReport, backends: &[String]) -> anyhow::Result<String> {
    let mut md = String::from(
        "**Environments** (CartPole-v1, `VecEnv`, controller actions)\n\n| envs | sequential steps/s | threaded steps/s |\n|---|---|---|\n",
    );
    let env_rows = report.rows.iter().filter(|r| r.measure == Measure::Env);
    let mut ns: Vec<usize> = env_rows.clone().map(|r| r.envs).collect();
    ns.dedup();
    for n in ns {
        let at = |backend: &str| {
            env_rows
                .clone()
                .find(|r| r.envs == n && r.backend == backend)
                .map_or("-".into(), |r| format!("{:.2e}", r.env_steps_per_second))
        };
        writeln!(md, "| {n} | {} | {} |", at("sequential"), at("threaded"))?;
    }
    md.push_str("\n**One gradient step**: updates/s (samples/s = batch × updates/s)\n\n");
    backend_grid(
        &mut md,
        report,
        backends,
        Measure::Update,
        "batch",
        |r| r.batch,
        |r| format!("{:.1} ({:.2e})", r.updates_per_second, r.samples_per_second),
    )?;
    md.push_str("\n**Large-batch training** (`learn_vec`, threaded CartPoles, one update of batch = envs per vector step): env steps/s, updates/s\n\n");
    backend_grid(
        &mut md,
        report,
        backends,
        Measure::Train,
        "envs",
        |r| r.envs,
        |r| format!("{:.2e}, {:.1}", r.env_steps_per_second, r.updates_per_second),
    )?;
    if backends.iter().any(|b| b == "wgpu") {
        md.push_str("\nCrossover (smallest batch where wgpu's gradient step beats every CPU backend): ");
        let parts: Vec<String> = report
            .crossover
            .iter()
            .map(|(w, b)| format!("width {w}: {}", b.map_or("none measured".into(), |b| format!("batch {b}"))))
            .collect();
        md.push_str(&parts.join("; "));
        md.push('\n');
    }
    Ok(md)
}

/// A table of `measure`'s rows: one line per (width, `key`), one column per backend.
fn backend_grid(
    md: &mut String,
    report: &ScaleReport,
    backends: &[String],
    measure: Measure,
    key_name: &str,
    key: impl Fn(&ScaleRow) -> usize,
    cell: impl Fn(&ScaleRow) -> String,
) -> anyhow::Result<()> {
    writeln!(md, "| width | {key_name} | {} |", backends.join(" | "))?;
    writeln!(md, "|---|---|{}", "---|".repeat(backends.len()))?;
    let rows: Vec<&ScaleRow> = report.rows.iter().filter(|r| r.measure == measure).collect();
    let mut lines: Vec<(usize, usize)> = rows.iter().map(|r| (r.width, key(r))).collect();
    lines.sort_unstable();
    lines.dedup();
    for (width, k) in lines {
        let values: Vec<String> = backends
            .iter()
            .map(|b| {
                rows.iter().find(|r| r.width == width && key(r) == k && &r.backend == b).map_or("-".into(), |r| cell(r))
            })
            .collect();
        writeln!(md, "| {width} | {k} | {} |", values.join(" | "))?;
    }
    Ok(())
}

/// Runs the benchmark and writes `report.{md,json,png}` under `args.out`; returns the markdown.
pub fn bench_scale(args: &ScaleBench) -> anyhow::Result<String> {
    let mut rows = env_rows(args)?;
    let mut backends = Vec::new();
    let devices = if args.devices.is_empty() { default_devices() } else { args.devices.clone() };
    for device in devices {
        let name = device.backend_name().to_owned();
        rows.extend(device.run(BackendRows { args, name: name.clone() })?);
        backends.push(name);
    }
    let report = ScaleReport { crossover: crossover(&rows, &args.widths), rows };
    let md = table(&report, &backends)?;
    print!("{md}");
    super::write_report(&args.out, &md, &report)?;

    // Samples per second against log2(batch), a line per backend and width.
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for backend in &backends {
        for &width in &args.widths {
            let points = report
                .rows
                .iter()
                .filter(|r| r.measure == Measure::Update && &r.backend == backend && r.width == width)
                .map(|r| ((r.batch as f64).log2(), r.samples_per_second / 1e3))
                .collect();
            lines.push((format!("{backend}, width {width}"), points));
        }
    }
    let top = lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)).fold(1.0, f64::max);
    let refs: Vec<(&str, &[(f64, f64)])> = lines.iter().map(|(l, p)| (l.as_str(), p.as_slice())).collect();
    rlhf_bench::plot_lines(
        &args.out.join("report.png"),
        "One DQN gradient step: transitions learned from per second",
        ("log2(batch size)", "thousand samples per second"),
        0.0..top * 1.1,
        &refs,
    )?;
    Ok(md)
}
