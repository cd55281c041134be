//! `cargo xtask serve`: the assistant over HTTP, with its teaching page and
//! feedback store (`rlhf_assistant::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use rlhf_assistant::model::DEFAULT_MODEL_DIR;
use rlhf_assistant::online::OnlineConfig;
use rlhf_assistant::qa::DEFAULT_QA_MODEL_DIR;
use rlhf_assistant::serve::store::Store;
use rlhf_assistant::serve::{ServeConfig, Service, interchange};

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
    /// The answer model for questions (`POST /v1/answer`); by default
    /// `runs/qa/model` when `cargo xtask qa` has written it.
    #[arg(long)]
    qa_model: Option<PathBuf>,
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
    config.qa_model = match &args.qa_model {
        Some(dir) => Some(dir.clone()),
        None => Some(PathBuf::from(DEFAULT_QA_MODEL_DIR)).filter(|dir| dir.exists()),
    };
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
            let questions = match &self.config.qa_model {
                Some(dir) => format!("questions from {}", dir.display()),
                None => format!("no questions: `cargo xtask qa` writes {DEFAULT_QA_MODEL_DIR}"),
            };
            println!(
                "serving {} on http://{address}/ ({questions}; store {})",
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

/// Arguments of `cargo xtask feedback`.
#[derive(Debug, Clone, Args)]
pub(crate) struct FeedbackArgs {
    #[command(subcommand)]
    command: FeedbackCommand,
    /// The intent model the store belongs to.
    #[arg(long, global = true, default_value = DEFAULT_MODEL_DIR)]
    checkpoint: PathBuf,
    /// The store: by default the one `cargo xtask serve` uses for --checkpoint.
    #[arg(long, global = true)]
    db: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum FeedbackCommand {
    /// Write the store's feedback as a JSON-lines log (the format `cargo xtask assistant` writes).
    Export {
        /// The log file to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
    },
    /// Append a JSON-lines log to the store (stop any server on it first).
    Import {
        /// The log file to read.
        file: PathBuf,
    },
}

/// The store URL `db` names, or `serve`'s default for `checkpoint`.
pub(crate) fn store_url(checkpoint: &std::path::Path, db: Option<&str>) -> String {
    db.map_or_else(|| ServeConfig::new(checkpoint).store_url, str::to_owned)
}

/// Whether `--feedback` names a store rather than a log file.
pub(crate) fn is_store_url(feedback: &str) -> bool {
    ["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| feedback.starts_with(scheme))
}

/// The feedback in the store at `url` of the model `spec` (at `step`), as log contents.
pub(crate) fn read_store_log(
    url: &str,
    spec: &rlhf_assistant::IntentModelSpec,
    step: u64,
) -> anyhow::Result<rlhf_assistant::feedback::LogContents> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(url, &spec.labels, step).await?;
        let entries = interchange::export(&store).await;
        store.close().await;
        // Line numbers are the entries' positions, as in the exported file.
        Ok(rlhf_assistant::feedback::LogContents {
            entries: entries?.into_iter().enumerate().map(|(i, e)| (i + 1, e)).collect(),
            torn: None,
        })
    })
}

/// `cargo xtask feedback export|import`.
pub(crate) fn feedback(args: &FeedbackArgs) -> anyhow::Result<()> {
    let (_, spec, meta) = rlhf_assistant::pipeline::load_intent_model::<rlhf_model::backend::CpuBackend>(
        &args.checkpoint,
        &rlhf_model::backend::cpu_device(),
    )?;
    let url = store_url(&args.checkpoint, args.db.as_deref());
    match &args.command {
        FeedbackCommand::Export { out } => {
            let contents = read_store_log(&url, &spec, meta.step)?;
            let mut text = String::new();
            for (_, entry) in &contents.entries {
                text.push_str(&serde_json::to_string(entry)?);
                text.push('\n');
            }
            crate::train::write_atomically(out, text.as_bytes())?;
            eprintln!("wrote {} entries of {url} to {}", contents.entries.len(), out.display());
        }
        FeedbackCommand::Import { file } => {
            let contents = rlhf_assistant::feedback::read_log(file)?;
            anyhow::ensure!(
                contents.torn.is_none(),
                "{}: the last line is cut short; repair or remove it before importing",
                file.display()
            );
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let summary = runtime.block_on(async {
                let store = Store::open(&url, &spec.labels, meta.step).await?;
                let summary = interchange::import(&store, &contents, file).await;
                store.close().await;
                anyhow::Ok(summary?)
            })?;
            eprintln!("imported {} into {url}", file.display());
            println!("{}", serde_json::to_string(&summary)?);
        }
    }
    Ok(())
}
