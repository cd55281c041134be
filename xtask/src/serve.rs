//! `cargo xtask serve`: the assistant over HTTP, with its teaching page and
//! feedback store (`rlhf_assistant::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use rlhf_assistant::model::DEFAULT_MODEL_DIR;
use rlhf_assistant::online::OnlineConfig;
use rlhf_assistant::serve::{ServeConfig, Service};

use crate::task::{BackendJob, Device};
use crate::train::read_config;

/// Whether this process learns from feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LearnerMode {
    /// Learn from feedback as it is committed.
    On,
    /// Record feedback only; serve newer saved versions as they appear in the store.
    Off,
}

/// Arguments of `cargo xtask serve`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// The intent model to serve.
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    checkpoint: PathBuf,
    /// The feedback store: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`;
    /// by default SQLite at `<checkpoint's folder>/serve/feedback.db`.
    #[arg(long)]
    db: Option<String>,
    /// Address to listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Required as `Authorization: Bearer TOKEN` on every write request.
    #[arg(long, env = "RLHF_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// `off`: record feedback and reload saved versions; another process learns.
    #[arg(long, value_enum, default_value_t = LearnerMode::On)]
    learner: LearnerMode,
    /// TOML file over the online-learning defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Backend: `cpu` (flex), `ndarray`, or `wgpu` (needs the feature).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

/// `cargo xtask serve`.
pub(crate) fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.addr.ip().is_loopback() || args.token.is_some(),
        "--addr {} is reachable from other machines: give --token (or RLHF_TOKEN) to protect the write endpoints",
        args.addr
    );
    let mut config = ServeConfig::new(&args.checkpoint);
    if let Some(db) = &args.db {
        config.store_url = db.clone();
    }
    config.token = args.token.clone();
    config.learner = args.learner == LearnerMode::On;
    config.online = read_config(args.config.as_deref(), OnlineConfig::default())?;
    args.device.run(ServeJob { config, addr: args.addr })
}

struct ServeJob {
    config: ServeConfig,
    addr: SocketAddr,
}

impl BackendJob for ServeJob {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(async move {
            let service = Service::start::<B>(&self.config, device).await?;
            let listener =
                tokio::net::TcpListener::bind(self.addr).await.with_context(|| format!("binding {}", self.addr))?;
            let address = listener.local_addr()?;
            println!(
                "serving {} on http://{address}/ (store {})",
                self.config.checkpoint.display(),
                service.state.store.name()
            );
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("stopping: finishing requests in flight, writing what is queued");
            };
            service.serve(listener, shutdown).await?;
            anyhow::Ok(())
        })
    }
}
