//! `cargo xtask test-gpu`: the wgpu backend's parity tests.
//!
//! They live in `crates/rlhf-algo/tests/wgpu_parity.rs` behind the `wgpu`
//! feature, outside CI's default suite because building burn-wgpu takes tens
//! of minutes on a small machine. Without a GPU they run on Mesa's software
//! Vulkan driver (lavapipe: Debian's `mesa-vulkan-drivers`).

use anyhow::Context;
use clap::Args;

/// Arguments of `cargo xtask test-gpu`.
#[derive(Debug, Args)]
pub struct TestGpuArgs {
    /// Extra arguments for the test binary (a name filter, `--nocapture`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    test_args: Vec<String>,
}

/// Builds and runs the parity tests with the `wgpu` feature.
pub fn test_gpu(args: &TestGpuArgs) -> anyhow::Result<()> {
    let mut command = crate::cargo();
    command.args(["test", "-p", "rlhf-algo", "--features", "wgpu", "--test", "wgpu_parity", "--"]);
    command.args(&args.test_args);
    tracing::info!("running {command:?}");
    let status = command.status().context("starting cargo")?;
    anyhow::ensure!(
        status.success(),
        "the wgpu parity tests failed ({status}); without a GPU, install a software Vulkan driver \
         (Debian: `apt-get install mesa-vulkan-drivers libvulkan1`)"
    );
    Ok(())
}
