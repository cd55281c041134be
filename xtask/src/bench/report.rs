//! `cargo xtask bench` with no subcommand: every benchmark, one report.
//!
//! Runs the criterion benchmarks (`cargo bench -p rlhf-bench`, one thread)
//! and the learning benchmarks (CartPole seeds, hindsight bit flipping, the
//! intent pipeline, throughput at scale, memory), optionally the Python
//! peers (`--peers`, in a virtual environment under `target/peers-venv`),
//! and writes `report.md` and `report.json` (with the machine, the versions
//! and the git commit) to the output folder. The full run writes to
//! `docs/bench/` and replaces the generated part of `docs/BENCHMARKS.md`;
//! `--quick` is the small version, for smoke runs, under `runs/bench-quick/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::{Args, Parser as _};
use rlhf_algo::stats::{Estimate, OverSeeds};
use rlhf_bench::table::{estimate_cell, seeds_cell};
use serde::Serialize;
use serde_json::Value;

/// Options of the whole report (`cargo xtask bench [--quick] [--peers]`).
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The small version (minutes): few seeds, small budgets, criterion's quick mode.
    #[arg(long)]
    pub quick: bool,
    /// The Python peers beside the benchmarks.
    #[command(flatten)]
    pub peers: super::peers::PeerArgs,
    /// Skip the criterion benchmarks (they build the bench profile).
    #[arg(long)]
    pub no_criterion: bool,
    /// Output folder [default: docs/bench, or runs/bench-quick with --quick].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The machine and software a report was measured with.
#[derive(Debug, Serialize)]
pub struct Provenance {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical cores available.
    pub cores: usize,
    /// GPU name, from `nvidia-smi` or the Vulkan driver, if any.
    pub gpu: Option<String>,
    /// `rustc --version`.
    pub rustc: String,
    /// Versions of the project and of burn (from `Cargo.lock`).
    pub versions: BTreeMap<String, String>,
    /// `git rev-parse HEAD`, with `-dirty` when the tree has changes.
    pub commit: String,
    /// UTC time of the run (`date -u`).
    pub date: String,
}

/// Everything `cargo xtask bench` measured.
#[derive(Debug, Serialize)]
struct FullReport {
    quick: bool,
    provenance: Provenance,
    /// Criterion benchmark id → mean time in nanoseconds, per element for
    /// benchmarks that declare a throughput (per step, per text).
    criterion: BTreeMap<String, f64>,
    /// Criterion benchmark id → its [`drift`] within the measurement window.
    criterion_drift: BTreeMap<String, f64>,
    cartpole: Value,
    her: Value,
    finetune: Value,
    pipeline: Value,
    scale: Value,
    memory: Value,
    /// Each peer script's JSON output.
    peers: BTreeMap<String, Value>,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub(super) fn provenance() -> Provenance {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let gpu = command_line("nvidia-smi", &["--query-gpu=name", "--format=csv,noheader"])
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let summary = command_line("vulkaninfo", &["--summary"])?;
            summary.lines().find_map(|l| {
                l.trim().strip_prefix("deviceName").map(|r| r.trim_start_matches([' ', '=']).trim().to_owned())
            })
        });
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).unwrap_or_default();
    let mut versions = BTreeMap::from([("rlhf".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]);
    for name in ["burn", "criterion"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        if let Some(rest) = lock.split(&needle).nth(1) {
            versions.insert(name.to_owned(), rest.split('"').next().unwrap_or_default().to_owned());
        }
    }
    let dirty = command_line("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let commit =
        command_line("git", &["rev-parse", "HEAD"]).map_or("unknown".into(), |c| if dirty { c + "-dirty" } else { c });
    Provenance {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        gpu,
        rustc: command_line("rustc", &["--version"]).unwrap_or_default(),
        versions,
        commit,
        date: command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default(),
    }
}

/// The workspace's root folder.
pub(super) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A benchmark whose time per iteration at the end of its window is more
/// than this many times that at its start is flagged in the report: it
/// slows down as it runs (subnormals, growing allocations), so its mean
/// depends on how long it ran.
pub(super) const DRIFT_LIMIT: f64 = 1.2;

/// Criterion's estimates, and how each benchmark drifted within its window.
#[derive(Debug, Default)]
struct CriterionResults {
    /// Id → mean nanoseconds (per element where a throughput is declared).
    means: BTreeMap<String, f64>,
    /// Id → [`drift`].
    drift: BTreeMap<String, f64>,
}

/// Runs `cargo bench -p rlhf-bench` on one thread and reads every estimate back.
fn criterion(quick: bool) -> anyhow::Result<CriterionResults> {
    let mut command = crate::cargo();
    command.current_dir(workspace_root()).env("RAYON_NUM_THREADS", "1").args(["bench", "-p", "rlhf-bench", "--"]);
    if quick {
        // Long enough for a slowdown over seconds to show in the drift
        // (with a 0.5 s window the DQN step read 1.4 ms where it settles at 4.5).
        command.args(["--warm-up-time", "0.5", "--measurement-time", "2"]);
    }
    let status = command.status().context("running cargo bench")?;
    anyhow::ensure!(status.success(), "cargo bench failed ({status})");
    let root = workspace_root().join("target").join("criterion");
    let mut results = CriterionResults::default();
    collect_estimates(&root, &root, &mut results)?;
    Ok(results)
}

/// The time per iteration over the samples in the last fifth of a criterion
/// window (by time) divided by that over the samples in its first fifth,
/// from its `sample.json` (`iters` and total `times` of each sample, in the
/// order taken); `None` without samples.
fn drift(sample: &Value) -> Option<f64> {
    let numbers = |key: &str| -> Option<Vec<f64>> { sample[key].as_array()?.iter().map(Value::as_f64).collect() };
    let (iters, times) = (numbers("iters")?, numbers("times")?);
    if iters.is_empty() || iters.len() != times.len() {
        return None;
    }
    let total: f64 = times.iter().sum();
    let (mut start, mut end, mut elapsed) = ((0.0, 0.0), (0.0, 0.0), 0.0);
    for (i, (&n, &t)) in iters.iter().zip(&times).enumerate() {
        // A sample belongs to the fifth it began in; the first and the
        // last sample always count.
        if i == 0 || elapsed < total / 5.0 {
            start = (start.0 + t, start.1 + n);
        }
        elapsed += t;
        if i + 1 == iters.len() || elapsed - t >= total * 4.0 / 5.0 {
            end = (end.0 + t, end.1 + n);
        }
    }
    Some((end.0 / end.1) / (start.0 / start.1))
}

/// Every `<id>/new/estimates.json` under `dir`: id → mean nanoseconds, and
/// its `sample.json`'s [`drift`].
fn collect_estimates(root: &Path, dir: &Path, out: &mut CriterionResults) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let file = path.join("new").join("estimates.json");
        if file.is_file() {
            let json: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)
                .with_context(|| format!("reading {}", file.display()))?;
            let mean =
                json["mean"]["point_estimate"].as_f64().with_context(|| format!("no mean in {}", file.display()))?;
            // Per element where the benchmark declares a throughput (CartPole: 10,000 steps an iteration).
            let meta = std::fs::read_to_string(path.join("new").join("benchmark.json")).unwrap_or_default();
            let meta: Value = serde_json::from_str(&meta).unwrap_or_default();
            let elements = meta["throughput"]["Elements"].as_f64().unwrap_or(1.0).max(1.0);
            let id = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            let sample = std::fs::read_to_string(path.join("new").join("sample.json")).unwrap_or_default();
            if let Some(drift) = drift(&serde_json::from_str(&sample).unwrap_or_default()) {
                out.drift.insert(id.clone(), drift);
            }
            out.means.insert(id, mean / elements);
        } else if path.file_name().is_some_and(|n| n != "report") {
            collect_estimates(root, &path, out)?;
        }
    }
    Ok(())
}

/// Runs an xtask command line in this process.
fn xtask(args: &[&str]) -> anyhow::Result<()> {
    let cli = crate::Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))?;
    crate::dispatch(cli.command)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Runs everything and writes the report.
pub fn bench_report(args: &ReportArgs) -> anyhow::Result<()> {
    let quick = args.quick;
    let out = args.out.clone().unwrap_or_else(|| if quick { "runs/bench-quick".into() } else { "docs/bench".into() });
    let runs = out.join("runs");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let provenance = provenance();
    eprintln!(
        "machine: {} ({} cores), GPU {:?}, commit {}",
        provenance.cpu, provenance.cores, provenance.gpu, provenance.commit
    );

    let criterion = if args.no_criterion { CriterionResults::default() } else { criterion(quick)? };

    // The quick run's seeds are too few for its intervals to mean much; its
    // report says so. The full run takes each benchmark's default seeds.
    // With `--peers`, each runs Stable-Baselines3 beside it on the same seeds.
    let seeds = if quick { "2" } else { "10" };
    let cartpole_dir = runs.join("cartpole");
    let cartpole_out = path(&cartpole_dir);
    let mut cartpole = vec!["bench", "cartpole", "--seeds", seeds, "--out", &cartpole_out];
    cartpole.extend(args.peers.forwarded());
    xtask(&cartpole)?;
    let her_dir = runs.join("her");
    let her_out = path(&her_dir);
    let mut her = vec!["bench", "her", "--jobs", "2", "--out", &her_out];
    her.extend(args.peers.forwarded());
    if quick {
        // No four-rooms grid (`--grids` alone).
        her.extend(["--bits", "5,10", "--seeds", "2", "--grids"]);
    }
    xtask(&her)?;
    let finetune_dir = path(&runs.join("finetune"));
    let mut finetune = vec!["bench", "finetune", "--out", &finetune_dir];
    if quick {
        finetune.extend(["--seeds", "2", "--steps", "20000"]);
    }
    xtask(&finetune)?;
    let pipeline_dir = runs.join("pipeline");
    if quick {
        let config = runs.join("pipeline-quick.toml");
        std::fs::create_dir_all(&runs)?;
        std::fs::write(
            &config,
            "net_arch = [64]\nrl_steps = 800\nfinetune_steps = 1500\ndialog_steps = 0\n[featurizer]\ndim = 1024\n[pretrain]\nsteps = 150\n[assistant_pretrain]\nsteps = 300\n",
        )?;
        let (config, out) = (path(&config), path(&pipeline_dir));
        xtask(&["pipeline", "--config", &config, "--seeds", "2", "--transfer-seeds", "0", "--out", &out])?;
    } else {
        xtask(&["pipeline", "--out", &path(&pipeline_dir)])?;
    }
    let scale_dir = path(&runs.join("scale"));
    if quick {
        xtask(&[
            "bench",
            "scale",
            "--envs",
            "256,4096",
            "--batches",
            "64,1024",
            "--widths",
            "64",
            "--devices",
            "cpu",
            "--seconds",
            "0.2",
            "--out",
            &scale_dir,
        ])?;
    } else {
        xtask(&["bench", "scale", "--out", &scale_dir])?;
    }
    xtask(&["bench", "memory", "--out", &path(&runs.join("memory"))])?;

    let mut peers = BTreeMap::new();
    if args.peers.peers {
        let python = super::peers::python(&args.peers)?;
        let peer = |script: &str, args: &[&str]| super::peers::run(&python, script, args);
        peers.insert("gymnasium_cartpole_step".into(), peer("gymnasium_cartpole_step.py", &[])?);
        peers.insert("torch_dqn_update".into(), peer("torch_dqn_update.py", &[])?);
        for domains in ["source", "target"] {
            peers.insert(format!("sklearn_intents_{domains}"), peer("sklearn_intents.py", &["--domains", domains])?);
        }
    }

    let report = FullReport {
        quick,
        provenance,
        criterion: criterion.means,
        criterion_drift: criterion.drift,
        cartpole: read_json(&cartpole_dir.join("report.json"))?,
        her: read_json(&her_dir.join("report.json"))?,
        finetune: read_json(&runs.join("finetune").join("report.json"))?,
        pipeline: read_json(&pipeline_dir.join("report.json"))?,
        scale: read_json(&runs.join("scale").join("report.json"))?,
        memory: read_json(&runs.join("memory").join("report.json"))?,
        peers,
    };
    // The pictures beside the report's tables.
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (from, to) in [
        (cartpole_dir.join("curves.png"), "cartpole_curves.png"),
        (cartpole_dir.join("profile.png"), "cartpole_profile.png"),
        (her_dir.join("report.png"), "her_success.png"),
        (her_dir.join("curves.png"), "her_curves.png"),
        (her_dir.join("profiles.png"), "her_profiles.png"),
        (runs.join("finetune").join("curve.png"), "finetune_curves.png"),
        (pipeline_dir.join("transfer.png"), "transfer.png"),
    ] {
        if from.exists() {
            std::fs::copy(&from, out.join(to)).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    let md = markdown(&report, &runs, "")?;
    super::write_report(&out, &md, &report)?;
    if !quick && args.out.is_none() {
        // docs/BENCHMARKS.md links the pictures of docs/bench/.
        splice_into_benchmarks(&markdown(&report, &runs, "bench/")?)?;
    }
    print!("{md}");
    Ok(())
}

/// The generated part of `docs/BENCHMARKS.md` lies between these lines.
const BEGIN: &str = "<!-- cargo xtask bench: generated from here -->";
const END: &str = "<!-- cargo xtask bench: generated up to here -->";

fn splice_into_benchmarks(md: &str) -> anyhow::Result<()> {
    let path = workspace_root().join("docs").join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        anyhow::bail!("{} has no `{BEGIN}` … `{END}` section", path.display())
    };
    let spliced = format!("{}{BEGIN}\n\n{md}\n{}", &text[..start], &text[end..]);
    crate::train::write_atomically(&path, spliced.as_bytes())?;
    Ok(())
}

/// Said above every table of the quick report.
const FEW_SEEDS: &str =
    "_Quick run: two seeds per setting, so the intervals below come from few seeds and are only indicative._\n\n";

/// The report's markdown; pictures are linked as `{img}NAME.png`.
fn markdown(report: &FullReport, runs: &Path, img: &str) -> anyhow::Result<String> {
    let p = &report.provenance;
    let mut md = String::new();
    writeln!(md, "## Report of `cargo xtask bench{}`\n", if report.quick { " --quick" } else { "" })?;
    writeln!(
        md,
        "Measured {} on {} ({} cores), GPU: {}; {}; burn {}; commit `{}`. Full numbers: `report.json` beside this file.\n",
        p.date,
        p.cpu,
        p.cores,
        p.gpu.as_deref().unwrap_or("none"),
        p.rustc,
        p.versions.get("burn").map_or("?", String::as_str),
        p.commit
    )?;
    let crit = |id: &str| report.criterion.get(id).copied();
    let peer =
        |name: &str, pointer: &str| report.peers.get(name).and_then(|v| v.pointer(pointer)).and_then(Value::as_f64);
    let ratio = |peer: Option<f64>, ours: Option<f64>| match (peer, ours) {
        (Some(p), Some(o)) if o > 0.0 => format!("{:.1}×", p / o),
        _ => "-".into(),
    };
    let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));

    if !report.criterion.is_empty() || !report.peers.is_empty() {
        md.push_str(
            "### Speed (criterion, one thread)\n\n| benchmark | ours | peer | peer / ours |\n|---|---|---|---|\n",
        );
        let step_ns = crit("cartpole/step");
        let gym = peer("gymnasium_cartpole_step", "/steps_per_second/make").map(|s| 1e9 / s);
        writeln!(
            md,
            "| CartPole-v1 step (ns) | {} | {} (Gymnasium `make`) | {} |",
            us(step_ns),
            us(gym),
            ratio(gym, step_ns)
        )?;
        // Many CartPoles at once: our `VecEnv` on one thread (criterion at 64,
        // the scale benchmark beyond) against Gymnasium's numpy-vectorised CartPole.
        let sequential_ns = |envs: u64| {
            report.scale["rows"].as_array().into_iter().flatten().find_map(|row| {
                let matches = row["measure"] == "env" && row["backend"] == "sequential" && row["envs"] == envs;
                matches.then(|| row["env_steps_per_second"].as_f64().map(|s| 1e9 / s)).flatten()
            })
        };
        for envs in [64, 256, 4096] {
            let ours = if envs == 64 { crit("vec_env/64_envs_sequential") } else { sequential_ns(envs) };
            let gym = peer("gymnasium_cartpole_step", &format!("/steps_per_second/vector_{envs}")).map(|s| 1e9 / s);
            if ours.is_some() || gym.is_some() {
                writeln!(
                    md,
                    "| CartPole-v1, {envs} envs, per env step (ns) | {} | {} (Gymnasium `make_vec`, numpy) | {} |",
                    us(ours),
                    us(gym),
                    ratio(gym, ours)
                )?;
            }
        }
        for (ours, theirs, label) in [
            (
                "dqn_gradient_step/batch64_64x64",
                "/gradient_step_us/64x64_huber_clip",
                "DQN gradient step, batch 64, 64×64 (µs)",
            ),
            (
                "dqn_gradient_step/batch64_256x256",
                "/gradient_step_us/256x256_huber_clip",
                "DQN gradient step, batch 64, 256×256 (µs)",
            ),
            ("greedy_action/host_64x64", "/greedy_action_us/64x64", "greedy action, 64×64 (µs)"),
            ("greedy_action/host_256x256", "/greedy_action_us/256x256", "greedy action, 256×256 (µs)"),
        ] {
            let ours = crit(ours).map(|ns| ns / 1e3);
            let theirs = peer("torch_dqn_update", theirs);
            writeln!(md, "| {label} | {} | {} (PyTorch) | {} |", us(ours), us(theirs), ratio(theirs, ours))?;
        }
        if !report.criterion.is_empty() {
            md.push_str(
                "\nEvery criterion estimate (mean per iteration, or per element where the benchmark counts \
                 elements), and its drift: the time per iteration in the last fifth of its window over that in \
                 the first fifth (above 1.20 it slows down as it runs, and its mean depends on the window):\n\n\
                 | id | mean | end / start |\n|---|---|---|\n",
            );
        }
        for (id, ns) in &report.criterion {
            let mean = if *ns >= 1e3 { format!("{:.2} µs", ns / 1e3) } else { format!("{ns:.1} ns") };
            let drift = match report.criterion_drift.get(id) {
                Some(&d) if d > DRIFT_LIMIT => format!("**{d:.2}: slows down**"),
                Some(d) => format!("{d:.2}"),
                None => "–".into(),
            };
            writeln!(md, "| `{id}` | {mean} | {drift} |")?;
        }
        let slowing: Vec<&String> =
            report.criterion_drift.iter().filter(|&(_, &d)| d > DRIFT_LIMIT).map(|(id, _)| id).collect();
        if !slowing.is_empty() {
            writeln!(md, "\nSlower at the end of their window than at its start by over 20%: {slowing:?}.")?;
        }
        md.push('\n');
    }

    md.push_str("### CartPole-v1, DQN\n\n");
    if report.quick {
        md.push_str(FEW_SEEDS);
    }
    md.push_str(&std::fs::read_to_string(runs.join("cartpole").join("report.md"))?);
    if runs.join("cartpole").join("profile.png").exists() {
        writeln!(md, "\n![CartPole: solved within τ]({img}cartpole_profile.png)")?;
    }
    writeln!(md, "\n![CartPole learning curves]({img}cartpole_curves.png)")?;

    md.push_str("\n### Hindsight experience replay, bit flipping\n\n");
    if report.quick {
        md.push_str(FEW_SEEDS);
    }
    md.push_str(&std::fs::read_to_string(runs.join("her").join("report.md"))?);
    writeln!(
        md,
        "\n![success against bits]({img}her_success.png)\n\n![success during training]({img}her_curves.png)\n\n![performance profiles]({img}her_profiles.png)"
    )?;
    md.push_str("\n### Fine-tuning: a longer pole\n\n");
    if report.quick {
        md.push_str(FEW_SEEDS);
    }
    md.push_str(&std::fs::read_to_string(runs.join("finetune").join("report.md"))?);
    writeln!(md, "\n![fine-tuning]({img}finetune_curves.png)")?;

    md.push_str("\n### Voice assistant pipeline (test split, noise 0.1)\n\n");
    if report.quick {
        md.push_str(FEW_SEEDS);
    }
    md.push_str("| stage | seeds | accuracy | zh | en |\n|---|---|---|---|---|\n");
    let study = &report.pipeline["study"];
    for stage in study["stage_accuracy"].as_array().into_iter().flatten() {
        let cell = |key: &str| {
            serde_json::from_value::<OverSeeds>(stage[key].clone()).map_or("-".into(), |o| seeds_cell(&o, 3))
        };
        writeln!(
            md,
            "| {} ({}) | {} | {} | {} | {} |",
            stage["stage"].as_str().unwrap_or("?"),
            stage["domains"].as_str().unwrap_or("?"),
            stage["accuracy"]["seeds"],
            cell("accuracy"),
            cell("accuracy_zh"),
            cell("accuracy_en")
        )?;
    }
    writeln!(md, "\n{}", super::intervals_note())?;
    // Accuracy overall, in Chinese and in English, under the keys `keys` of `v`.
    let by_language = |v: &Value, keys: [&str; 3]| {
        let [all, zh, en] =
            keys.map(|key| v.get(key).and_then(Value::as_f64).map_or("-".into(), |a| format!("{a:.3}")));
        format!("{all} (zh {zh}, en {en})")
    };
    let (ours, sklearn) = (["accuracy", "accuracy_zh", "accuracy_en"], ["all", "zh", "en"]);
    writeln!(
        md,
        "\nThe source model after the RL stage on the same test utterances without noise: {}; on its training phrasings, slots and noise drawn afresh: {}{}.",
        by_language(&study["source_noise_free"], ours),
        by_language(&study["source_seen_phrasings"], ours),
        if report.quick { " (the quick run's smoke configuration, not the pipeline's accuracy)" } else { "" }
    )?;
    if let Some(sk) = report.peers.get("sklearn_intents_source") {
        let curve: Vec<String> = sk["learning_curve"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{} → {:.3}", p["train_phrasings_per_group"], p["accuracy"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        writeln!(
            md,
            "scikit-learn {} on the same split without noise (TF-IDF of character 1–3-grams and words): logistic regression {}, linear SVM {}; logistic regression against training phrasings per intent and language: {}.",
            sk["sklearn"].as_str().unwrap_or("?"),
            by_language(&sk["logistic_regression"], sklearn),
            by_language(&sk["linear_svc"], sklearn),
            curve.join(", ")
        )?;
    }
    if let Some(sk) = report.peers.get("sklearn_intents_target") {
        writeln!(
            md,
            "scikit-learn on the target domains, supervised on all their training phrasings, without noise: logistic regression {}.",
            by_language(&sk["logistic_regression"], sklearn)
        )?;
    }
    if let Some(transfer) = study.get("transfer").filter(|t| !t.is_null()) {
        let over = |key: &str| serde_json::from_value::<OverSeeds>(transfer[key].clone()).ok();
        let improvement: Option<Estimate> = serde_json::from_value(transfer["finetune_improvement"].clone())?;
        writeln!(
            md,
            "\nTransfer to the target domains over {} seeds, interactions to {:.0}% test accuracy (a seed that never reached it counts the {} of the budget): fine-tuned {}, from scratch {}; P(fine-tuned reaches it sooner) {}.\n\n![transfer]({img}transfer.png)",
            transfer["seeds"],
            100.0 * transfer["target_accuracy"].as_f64().unwrap_or(0.9),
            transfer["budget"],
            over("finetune_to_target").map_or("-".into(), |o| seeds_cell(&o, 0)),
            over("scratch_to_target").map_or("-".into(), |o| seeds_cell(&o, 0)),
            estimate_cell(improvement, 2)
        )?;
    }

    let assistant = &report.pipeline["assistant"];
    writeln!(
        md,
        "\n### The assistant model ({} intents, test split)\n\n| noise | accuracy | zh | en |\n|---|---|---|---|",
        assistant["labels"].as_array().map_or(0, Vec::len)
    )?;
    let cell = |v: &Value| serde_json::from_value::<OverSeeds>(v.clone()).map_or("-".into(), |o| seeds_cell(&o, 3));
    for row in assistant["accuracy"].as_array().into_iter().flatten() {
        let [all, zh, en] = ["accuracy", "accuracy_zh", "accuracy_en"].map(|key| cell(&row[key]));
        writeln!(md, "| {} | {all} | {zh} | {en} |", row["noise"])?;
    }
    if let Some(old) = assistant["old_intents"].as_object() {
        let [narrow, all] = ["narrow", "all_intents"].map(|key| old.get(key).map_or("-".into(), cell));
        writeln!(md, "\nThe source intents' test utterances: the source model {narrow}, the all-intent model {all}.")?;
    }

    md.push_str("\n### Throughput at scale\n\n");
    md.push_str(&std::fs::read_to_string(runs.join("scale").join("report.md"))?);
    md.push_str("\n### Peak resident memory\n\n");
    md.push_str(&std::fs::read_to_string(runs.join("memory").join("report.md"))?);
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_compares_the_last_fifth_of_a_window_with_the_first() {
        // Linear sampling (1, 2, ... iterations), 10 ns each throughout: no drift.
        let steady = serde_json::json!({"iters": [1.0, 2.0, 3.0, 4.0, 5.0], "times": [10.0, 20.0, 30.0, 40.0, 50.0]});
        assert_eq!(drift(&steady), Some(1.0));
        // 60 ns in all: the samples begun before 12 ns (0 and 10) take 10 ns
        // an iteration, the last one (begun at 40, none after 48) 20: twice as slow.
        let slowing = serde_json::json!({"iters": [1.0, 1.0, 1.0, 1.0, 1.0], "times": [10.0, 10.0, 10.0, 10.0, 20.0]});
        assert_eq!(drift(&slowing), Some(2.0));
        assert!(drift(&slowing).is_some_and(|d| d > DRIFT_LIMIT));
        // 94 ns in all: the samples begun before 18.8 ns (at 0, 5, 10, 17)
        // took 24 ns for 4 iterations; the one begun after 75.2 (at 79), 15 ns for 1.
        let times: Vec<f64> = [5.0, 5.0, 7.0, 7.0, 9.0, 9.0, 11.0, 11.0, 15.0, 15.0].into();
        let ramp = serde_json::json!({"iters": vec![1.0; 10], "times": times});
        let expected = 15.0 / (24.0 / 4.0);
        assert!(drift(&ramp).is_some_and(|d| (d - expected).abs() < 1e-12), "{:?}", drift(&ramp));
        assert_eq!(drift(&serde_json::json!({"iters": [], "times": []})), None);
        assert_eq!(drift(&serde_json::json!({"iters": [1.0], "times": [1.0, 2.0]})), None);
    }
}
