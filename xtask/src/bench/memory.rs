//! `cargo xtask bench memory`: peak resident memory.
//!
//! Each case runs in a fresh child process (this program again, with the
//! hidden `bench memory-probe CASE`), so one case's peak does not hide
//! another's; the child reads its own `VmHWM` (peak) and `VmRSS` from
//! `/proc/self/status` (Linux) and prints them as JSON.
//!
//! - `baseline`: the process alone, nothing trained.
//! - `cartpole`: `cargo xtask train` with its defaults (the README's main job).
//! - `replay`: a 1,000,000-transition CartPole replay buffer, filled; its
//!   growth in resident memory against the bytes of its transitions.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::{Args, ValueEnum};
use rlhf_algo::replay::ReplayBuffer;
use serde::{Deserialize, Serialize};

/// Arguments of `bench memory`.
#[derive(Debug, Clone, Args)]
pub struct MemoryBench {
    /// Folder of the report.
    #[arg(long, default_value = "runs/bench-memory")]
    pub out: PathBuf,
}

/// A case of the memory benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryCase {
    /// The process alone.
    Baseline,
    /// The default CartPole training run.
    Cartpole,
    /// A filled 1,000,000-transition replay buffer.
    Replay,
}

/// Arguments of the hidden `bench memory-probe`.
#[derive(Debug, Clone, Args)]
pub struct MemoryProbe {
    /// The case to run in this process.
    case: MemoryCase,
    /// Scratch folder for the training run.
    #[arg(long)]
    scratch: PathBuf,
}

/// What one child measured, in bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryRow {
    /// The case.
    pub case: MemoryCase,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
    /// For `replay`: resident growth from the empty buffer to the filled one.
    pub replay_rss_growth_bytes: Option<u64>,
    /// For `replay`: the bytes of its transitions (`ReplayBuffer::heap_bytes`).
    pub replay_transition_bytes: Option<u64>,
}

/// `VmHWM` and `VmRSS` of this process, in bytes.
fn peak_and_current_rss() -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status (Linux only)")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line =
            status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in /proc/self/status"))?;
        let kib: u64 = line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("reading {line:?}"))?;
        Ok(kib * 1024)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// Transitions in the `replay` case's CartPole buffer.
const REPLAY_TRANSITIONS: u64 = 1_000_000;

/// Runs one case in this process and prints its row as JSON.
pub fn probe(args: &MemoryProbe) -> anyhow::Result<()> {
    let (mut growth, mut transition_bytes) = (None, None);
    match args.case {
        MemoryCase::Baseline => {}
        MemoryCase::Cartpole => {
            let out = args.scratch.join("cartpole");
            crate::train::NewRun::new(rlhf_env::EnvId::CartPoleV1, out).train()?;
        }
        MemoryCase::Replay => {
            let (_, before) = peak_and_current_rss()?;
            let mut buffer = ReplayBuffer::new(REPLAY_TRANSITIONS as usize, 4)?;
            for i in 0..REPLAY_TRANSITIONS as u32 {
                let x = i as f32;
                buffer.push(&[x, -x, 0.5 * x, 1.0], (i % 2) as usize, 1.0, &[x, x, x, x], i % 500 == 0)?;
            }
            let (_, after) = peak_and_current_rss()?;
            growth = Some(after.saturating_sub(before));
            transition_bytes = Some(buffer.heap_bytes() as u64);
            std::hint::black_box(&buffer);
        }
    }
    let (peak, _) = peak_and_current_rss()?;
    let row = MemoryRow {
        case: args.case,
        peak_rss_bytes: peak,
        replay_rss_growth_bytes: growth,
        replay_transition_bytes: transition_bytes,
    };
    println!("{}", serde_json::to_string(&row)?);
    Ok(())
}

/// Runs every case in a child process; writes `report.{md,json}` and returns the markdown.
pub fn bench_memory(args: &MemoryBench) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding this program")?;
    let scratch = args.out.join("scratch");
    let mut rows = Vec::new();
    for case in [MemoryCase::Baseline, MemoryCase::Cartpole, MemoryCase::Replay] {
        let name = case.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
        let output = Command::new(&exe)
            .args(["bench", "memory-probe", &name, "--scratch"])
            .arg(&scratch)
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        let row: MemoryRow = super::last_json_line(&output, &format!("the {name} probe"))?;
        eprintln!("{name}: peak {:.1} MiB", row.peak_rss_bytes as f64 / MIB);
        rows.push(row);
    }
    std::fs::remove_dir_all(&scratch).ok();

    let mut md = String::from("| case | peak resident memory (MiB) | note |\n|---|---|---|\n");
    for row in &rows {
        let note = match (row.replay_rss_growth_bytes, row.replay_transition_bytes) {
            (Some(growth), Some(bytes)) => format!(
                "resident growth {:.1} MiB for {:.1} MiB of transitions ({} bytes each): {:+.2} MiB beyond them",
                growth as f64 / MIB,
                bytes as f64 / MIB,
                bytes / REPLAY_TRANSITIONS,
                (growth as f64 - bytes as f64) / MIB
            ),
            _ => String::new(),
        };
        writeln!(md, "| {:?} | {:.1} | {note} |", row.case, row.peak_rss_bytes as f64 / MIB)?;
    }
    print!("{md}");
    super::write_report(&args.out, &md, &rows)?;
    Ok(md)
}

const MIB: f64 = 1024.0 * 1024.0;
