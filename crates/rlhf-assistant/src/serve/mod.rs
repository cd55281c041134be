//! Serving the assistant over HTTP (`cargo xtask serve`): a JSON API under
//! `/v1`, the teaching page at `/`, and the feedback store.
//!
//! - Answers never wait for learning: they read an immutable [`Snapshot`]
//!   through an `ArcSwap`, on whatever thread tokio runs them.
//! - One writer task owns the store's writes ([`writer`]): interactions are
//!   queued and written in bursts; feedback, undos and new intents are
//!   answered once their burst is committed.
//! - One learner thread applies the committed events in order and publishes
//!   a new snapshot when its queue is empty ([`learner`]).
//! - A restarted server loads the newest saved version (or the base
//!   checkpoint) and replays the events after it, in order; with no save in
//!   between, that is the model the stopped server had, bit for bit.
//! - `--learner off`: the server answers and records feedback, and reloads
//!   a newer saved version when one appears in the store.
//! - Given an answer model, it answers questions too ([`answers`]:
//!   `POST /v1/answer` and its feedback), through the same writer and store,
//!   with its own learner thread.

pub mod answers;
pub mod api;
pub mod interchange;
pub mod learner;
pub mod store;
pub mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use burn::tensor::backend::AutodiffBackend;
use tokio::sync::mpsc;

use crate::AssistantError;
use crate::model::IntentModel;
use crate::online::OnlineConfig;
use crate::pipeline::load_intent_model;
use crate::qa::{QaLearnConfig, QaModel};
use answers::{AnswerLearner, Answers};
use api::ApiError;
use learner::{Learner, LearnerMessage, Snapshot};
use store::{Event, Store};
use writer::{WriteOp, Writer};

/// The longest utterance accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The intent model served (its base version).
    pub checkpoint: PathBuf,
    /// Where saved versions go (`versions/<n>`), beside the default store.
    pub run_dir: PathBuf,
    /// The store's URL (`sqlite://...` or `postgres://...`).
    pub store_url: String,
    /// Learn from feedback in this process (`false`: record, and reload saved versions).
    pub learner: bool,
    /// Required on every write request, when set.
    pub token: Option<String>,
    /// Below this confidence the answer carries a question (`clarify`).
    pub clarify_margin: f32,
    /// The online learner's settings.
    pub online: OnlineConfig,
    /// With `learner` off: how often to look for a newer saved version.
    pub reload_every: Duration,
    /// The answer model (`cargo xtask qa` writes one); `None`: no questions answered.
    pub qa_model: Option<PathBuf>,
    /// How the answer model learns from feedback.
    pub qa_learn: QaLearnConfig,
}

impl ServeConfig {
    /// The defaults for `checkpoint`: the run folder `<checkpoint's parent>/serve`
    /// with its SQLite store `feedback.db`.
    pub fn new(checkpoint: &Path) -> Self {
        let run_dir = checkpoint.parent().unwrap_or(Path::new(".")).join("serve");
        Self {
            store_url: store::sqlite_url(&store::default_store_path(&run_dir)),
            checkpoint: checkpoint.to_owned(),
            run_dir,
            learner: true,
            token: None,
            clarify_margin: 0.25,
            online: OnlineConfig::default(),
            reload_every: Duration::from_secs(1),
            qa_model: None,
            qa_learn: QaLearnConfig::default(),
        }
    }
}

/// What every request handler shares.
pub struct AppState {
    /// The model answering now.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    writes: mpsc::UnboundedSender<WriteOp>,
    /// The next interaction's id.
    pub next_interaction: AtomicI64,
    /// The last committed event's id.
    pub last_event: Arc<AtomicI64>,
    /// Versions count from here.
    pub base_step: i64,
    /// Labels as the writer knows them.
    pub labels: Arc<RwLock<Vec<String>>>,
    /// How many labels the base checkpoint has.
    pub base_labels: usize,
    /// The store, for reads.
    pub store: Store,
    /// Required on writes, when set.
    pub token: Option<String>,
    /// See [`ServeConfig::clarify_margin`].
    pub clarify_margin: f32,
    /// Whether this process learns.
    pub learning: bool,
    /// The learner's inbox (for saves), when this process learns.
    pub learner: Option<Arc<Mutex<std::sync::mpsc::Sender<LearnerMessage>>>>,
    /// Question answering, when the server has an answer model.
    pub answers: Option<Answers>,
}

impl AppState {
    fn send(&self, op: WriteOp) -> Result<(), ApiError> {
        self.writes.send(op).map_err(|_| ApiError::unavailable("the store's writer stopped"))
    }

    async fn wait<T>(&self, answer: tokio::sync::oneshot::Receiver<Result<T, ApiError>>) -> Result<T, ApiError> {
        answer.await.map_err(|_| ApiError::unavailable("the store's writer stopped"))?
    }
}

/// The HTTP routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/predict", post(api::predict))
        .route("/v1/feedback", post(api::feedback))
        .route("/v1/undo", post(api::undo))
        .route("/v1/intents", get(api::intents).post(api::add_intent))
        .route("/v1/stats", get(api::stats))
        .route("/v1/history", get(api::history))
        .route("/v1/model/save", post(api::save))
        .route("/v1/answer", post(answers::answer))
        .route("/v1/answer/feedback", post(answers::answer_feedback))
        .route("/v1/openapi.json", get(api::openapi))
        .route("/healthz", get(api::healthz))
        .route("/", get(api::asset))
        .route("/app.js", get(api::asset))
        .route("/style.css", get(api::asset))
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), api::require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A server ready to take requests: its routes, and the tasks to wind
/// down when it stops.
pub struct Service {
    /// Shared with the handlers.
    pub state: Arc<AppState>,
    writer: tokio::task::JoinHandle<()>,
    learner: Option<std::thread::JoinHandle<()>>,
    answer_learner: Option<AnswerLearnerThread>,
    reloader: Option<tokio::task::JoinHandle<()>>,
    /// Tells the learner to leave its queue: stopping never waits for a backlog.
    stopping: Arc<AtomicBool>,
}

impl Service {
    /// Loads the model, opens the store, replays the events since the
    /// newest saved version, and starts the writer and the learner.
    pub async fn start<B: AutodiffBackend>(config: &ServeConfig, device: B::Device) -> Result<Self, AssistantError>
    where
        B::Device: Send + 'static,
    {
        let base = IntentModel::<B>::load(&config.checkpoint, &[], config.online.seed, &device)?;
        if config.store_url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.run_dir)
                .map_err(|source| AssistantError::Io { path: config.run_dir.clone(), source })?;
        }
        let store = Store::open(&config.store_url, &base.spec.labels, base.step).await?;
        let base_step = store.base_step().await?;
        let base_labels = base.spec.labels.len();
        let featurizer = base.features.clone();
        let rehearsal = base.rehearsal(None)?;
        // The newest saved version, else the base checkpoint.
        let saved = store.latest_version().await?;
        let (network, labels, last_saved) = match &saved {
            Some(v) => {
                let (network, spec, _) = load_intent_model::<B>(&config.run_dir.join(&v.checkpoint), &device)?;
                (network, spec.labels, v.last_event)
            }
            None => (base.network.clone(), base.spec.labels.clone(), 0),
        };
        let model = IntentModel {
            network,
            spec: crate::IntentModelSpec::new(labels, &featurizer),
            original_labels: base.spec.labels.clone(),
            step: base.step,
            features: featurizer.clone(),
        };
        let online = model.learner(rehearsal, config.online.clone())?;
        let backend = B::name(&device);
        let mut learner = Learner::new(
            online,
            featurizer,
            base_step,
            last_saved,
            config.online.undo_depth,
            config.run_dir.clone(),
            backend,
            config.online.seed,
        );
        let events = store.events_after(last_saved).await?;
        let (last_interaction, last_event) = store.last_ids().await?;
        let mut labels = learner.labels().to_vec();
        if config.learner {
            for event in &events {
                learner.apply(event)?;
            }
            labels = learner.labels().to_vec();
            if !events.is_empty() {
                tracing::info!("replayed {} events after version {}", events.len(), base_step + last_saved);
            }
        } else {
            labels.extend(events.iter().filter_map(|e| match &e.event {
                Event::AddIntent { name } => Some(name.clone()),
                _ => None,
            }));
        }
        let snapshot = Arc::new(ArcSwap::from_pointee(learner.snapshot()?));
        let labels = Arc::new(RwLock::new(labels));
        let last_event = Arc::new(AtomicI64::new(last_event));
        let stopping = Arc::new(AtomicBool::new(false));
        let (learner_handle, learner_inbox) = if config.learner {
            let (sender, inbox) = std::sync::mpsc::channel();
            let published = snapshot.clone();
            let stop_flag = stopping.clone();
            let handle = spawn_in_background("learner", move || learner.run(inbox, published, stop_flag))?;
            (Some(handle), Some(Arc::new(Mutex::new(sender))))
        } else {
            (None, None)
        };
        let answer_side = start_answers::<B>(config, &store, &stopping, &device).await?;
        let (answer_learner, answer_inbox) = answer_side.learner.unzip();
        let (writes, inbox) = mpsc::unbounded_channel();
        let writer = Writer {
            store: store.clone(),
            labels: labels.clone(),
            last_event: last_event.clone(),
            base_step,
            learner: learner_inbox.clone(),
            failing: Mutex::new(None),
            last_answer_feedback: AtomicI64::new(answer_side.last_feedback),
            answer_learner: answer_inbox,
        };
        let writer = tokio::spawn(writer.run(inbox));
        let reloader = (!config.learner).then(|| {
            tokio::spawn(reload_saved_versions::<B>(
                store.clone(),
                config.run_dir.clone(),
                snapshot.clone(),
                config.reload_every,
                device,
            ))
        });
        let state = Arc::new(AppState {
            snapshot,
            writes,
            next_interaction: AtomicI64::new(last_interaction + 1),
            last_event,
            base_step,
            labels,
            base_labels,
            store,
            token: config.token.clone(),
            clarify_margin: config.clarify_margin,
            learning: config.learner,
            learner: learner_inbox,
            answers: answer_side.answers,
        });
        Ok(Self { state, writer, learner: learner_handle, answer_learner, reloader, stopping })
    }

    /// The routes.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight
    /// requests finish, writes what is queued, and closes the store.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AssistantError> {
        let address = listener.local_addr().ok();
        axum::serve(listener, self.router().into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| AssistantError::Io { path: PathBuf::from(format!("{address:?}")), source })?;
        self.stop().await;
        Ok(())
    }

    /// Writes what is queued, stops the learner (saving what it learned as
    /// a version; the feedback it had not learned yet is replayed at the next
    /// start), closes the store.
    pub async fn stop(self) {
        let Service { state, writer, learner, answer_learner, reloader, stopping } = self;
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        let store = state.store.clone();
        let _ = state.writes.send(WriteOp::Stop);
        let _ = writer.await;
        stopping.store(true, Ordering::Relaxed);
        let (reply, saved) = tokio::sync::oneshot::channel();
        if let Some(inbox) = &state.learner
            && let Ok(inbox) = inbox.lock()
        {
            let _ = inbox.send(LearnerMessage::Stop(reply));
        } else {
            drop(reply); // no learner: nothing to save
        }
        match saved.await {
            Ok(Some(Ok(saved))) => match store.save_version(&saved, store::now_ms()).await {
                Ok(()) => tracing::info!("saved version {} at stop", saved.version),
                Err(e) => tracing::warn!("version {} saved at stop but not recorded: {e}", saved.version),
            },
            Ok(Some(Err(e))) => tracing::warn!("saving the model at stop: {e}; the next start replays the feedback"),
            Ok(None) | Err(_) => {}
        }
        if let Some(learner) = learner {
            let _ = tokio::task::spawn_blocking(move || learner.join()).await;
        }
        // The writer has stopped, so the answer learner's inbox is closed:
        // it ends, saving what it learned.
        if let Some(learner) = answer_learner {
            match tokio::task::spawn_blocking(move || learner.join()).await {
                Ok(Ok(Some(Ok(saved)))) => match store.save_answer_model(&saved).await {
                    Ok(()) => tracing::info!("saved answer model version {} at stop", saved.version),
                    Err(e) => tracing::warn!("answer model version {} saved but not recorded: {e}", saved.version),
                },
                Ok(Ok(Some(Err(e)))) => {
                    tracing::warn!("saving the answer model at stop: {e}; the next start replays the feedback")
                }
                _ => {}
            }
        }
        store.close().await;
    }
}

/// Starts a thread named `name` that runs `work` at background priority
/// ([`learner::run_in_background`]).
fn spawn_in_background<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, AssistantError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            learner::run_in_background();
            work()
        })
        .map_err(|source| AssistantError::Io { path: PathBuf::from(format!("{name} thread")), source })
}

/// The answer learner's thread: it returns the version it saved at its end.
type AnswerLearnerThread = std::thread::JoinHandle<Option<Result<store::SavedAnswerModel, AssistantError>>>;

/// The question-answering side of a started server.
#[derive(Default)]
struct AnswerSide {
    /// The handlers' state; `None` without an answer model.
    answers: Option<Answers>,
    /// The answer learner's thread and inbox, when this process learns.
    learner: Option<(AnswerLearnerThread, std::sync::mpsc::Sender<answers::AnswerEvent>)>,
    /// The last stored answer feedback's id.
    last_feedback: i64,
}

/// The answer model's side of a server, when `config` names one: loads its
/// newest saved version learned from that model (else the model itself),
/// replays the stored answer feedback after it in order (when this process
/// learns) and starts the answer learner.
async fn start_answers<B: AutodiffBackend>(
    config: &ServeConfig,
    store: &Store,
    stopping: &Arc<AtomicBool>,
    device: &B::Device,
) -> Result<AnswerSide, AssistantError> {
    let (last_answer, last_feedback) = store.last_answer_ids().await?;
    let Some(dir) = &config.qa_model else { return Ok(AnswerSide { last_feedback, ..AnswerSide::default() }) };
    let base = QaModel::<B>::fingerprint(dir)?;
    let saved = match store.saved_answer_model().await? {
        Some(saved) if saved.base == base => match QaModel::<B>::load(&config.run_dir.join(&saved.dir), device) {
            Ok(model) => Some((model, saved.version)),
            Err(e) => {
                tracing::warn!("answer model version {} not loaded ({e}); replaying all feedback", saved.version);
                None
            }
        },
        _ => None,
    };
    let (model, version) = match saved {
        Some(saved) => saved,
        None => (QaModel::<B>::load(dir, device)?, 0),
    };
    let seed = config.online.seed;
    let run_dir = config.run_dir.clone();
    let mut learner = AnswerLearner::new(model, version, config.qa_learn.clone(), seed, run_dir, base)?;
    if config.learner {
        let stored = store.answer_feedback_after(version).await?;
        for event in &stored {
            learner.apply(event)?;
        }
        if !stored.is_empty() {
            tracing::info!("replayed {} answer feedback after answer model version {version}", stored.len());
        }
    }
    let rewards = learner.config().rewards;
    let hindsight = learner.config().hindsight;
    let snapshot = Arc::new(ArcSwap::from_pointee(learner.snapshot()?));
    let thread = if config.learner {
        let (sender, inbox) = std::sync::mpsc::channel();
        let (published, stop_flag) = (snapshot.clone(), stopping.clone());
        let handle = spawn_in_background("answer-learner", move || learner.run(inbox, published, stop_flag))?;
        Some((handle, sender))
    } else {
        None
    };
    let answers = Answers { snapshot, next_answer: AtomicI64::new(last_answer + 1), rewards, hindsight };
    Ok(AnswerSide { answers: Some(answers), learner: thread, last_feedback })
}

/// With the learner elsewhere: swaps in each newer saved version.
async fn reload_saved_versions<B: AutodiffBackend>(
    store: Store,
    run_dir: PathBuf,
    snapshot: Arc<ArcSwap<Snapshot>>,
    every: Duration,
    device: B::Device,
) {
    loop {
        tokio::time::sleep(every).await;
        let Ok(Some(saved)) = store.latest_version().await else { continue };
        if saved.version <= snapshot.load().version {
            continue;
        }
        match load_intent_model::<B>(&run_dir.join(&saved.checkpoint), &device).and_then(|(network, spec, _)| {
            Ok(Snapshot {
                version: saved.version,
                host: network.to_host()?,
                featurizer: spec.features_like(&snapshot.load().featurizer)?,
                labels: Arc::new(spec.labels),
            })
        }) {
            Ok(next) => {
                tracing::info!("serving saved version {}", next.version);
                snapshot.store(Arc::new(next));
            }
            Err(e) => tracing::warn!("saved version {} could not be loaded: {e}", saved.version),
        }
    }
}
