//! The `/v1` JSON API, the page, and their error type.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rlhf_model::HostQNetwork;
use rlhf_model::text::SparseFeatures;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::learner::Snapshot;
use super::store::{InteractionRow, now_ms};
use super::writer::{FeedbackAck, WriteOp};
use super::{AppState, MAX_TEXT_CHARS};
use crate::Language;
use crate::assistant::Clarification;
use crate::corpus::describe_intent;
use crate::feedback::Feedback;

/// An error as the API returns it: a status and `{"error": {code, message, field}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable snake_case code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// An error of `status` with `code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None }
    }

    /// The store could not be written: 503, predictions go on.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: ErrorBody,
}

/// What went wrong, in [`ErrorResponse`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code (`invalid_field`, `not_found`, `conflict`, `store_unavailable`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorResponse { error: ErrorBody { code: self.code.into(), message: self.message, field: self.field } };
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        // axum reports serde's path first: "text: invalid type: ..." or "unknown field `x`".
        let detail = text.split_once("target type: ").map_or(text.as_str(), |(_, d)| d).to_owned();
        let field = detail
            .split_once("unknown field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(f, _)| f.to_owned())
            .or_else(|| {
                detail.split_once(": ").map(|(f, _)| f).filter(|f| !f.contains(' ') && !f.is_empty()).map(str::to_owned)
            })
            .or_else(|| {
                detail.split_once("missing field `").and_then(|(_, r)| r.split_once('`')).map(|(f, _)| f.into())
            });
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self { status, code: "invalid_request", message: detail, field }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "invalid_query", message: rejection.body_text(), field: None }
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// `POST /v1/predict`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// What was said, 1 to 2,000 characters.
    pub text: String,
    /// The client's session (at most 100 characters).
    #[serde(default)]
    pub session: Option<String>,
}

/// One intent and its Q-value.
#[derive(Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ScoredIntent {
    /// The intent.
    pub intent: String,
    /// Its Q-value.
    pub q: f32,
}

/// `POST /v1/predict`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PredictResponse {
    /// The id feedback refers to.
    pub interaction_id: i64,
    /// What was said.
    pub text: String,
    /// The chosen intent.
    pub intent: String,
    /// Best minus second-best Q-value (0 a coin toss, 2 certain).
    pub confidence: f32,
    /// The five best intents, best first.
    pub top: Vec<ScoredIntent>,
    /// A question, when the margin is too thin to act on.
    pub clarify: Option<ClarifyBody>,
    /// The model that answered.
    pub model_version: i64,
}

/// The question the assistant asks instead of acting.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClarifyBody {
    /// The two intents it hesitates between.
    pub options: [String; 2],
    /// What it says.
    pub prompt: String,
}

/// Per-thread answering state: a clone of the snapshot's network (its
/// weights shared) and the featuriser's buffers.
struct Worker {
    version: i64,
    host: HostQNetwork,
    featurizer: crate::IntentFeatures,
    features: SparseFeatures,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// Q-values of `text` under `snapshot` and the features' fingerprint.
fn score(snapshot: &Snapshot, text: &str) -> Result<(Vec<f32>, u64), ApiError> {
    WORKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let worker = match slot.take() {
            Some(w) if w.version == snapshot.version && w.host.shares_weights(&snapshot.host) => slot.insert(w),
            _ => {
                let featurizer = snapshot.featurizer.clone();
                slot.insert(Worker {
                    version: snapshot.version,
                    host: snapshot.host.clone(),
                    featurizer,
                    features: SparseFeatures::default(),
                })
            }
        };
        worker
            .featurizer
            .sparse(text, &mut worker.features)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "model", e.to_string()))?;
        let q = worker
            .host
            .q_values_sparse(&worker.features.indices, &worker.features.values)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "model", e.to_string()))?
            .to_vec();
        Ok((q, worker.features.fingerprint()))
    })
}

/// Checks `text`: not blank, at most [`MAX_TEXT_CHARS`] characters.
pub(crate) fn check_text(text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_field("text", "is empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::bad_field("text", format!("has {chars} characters, more than {MAX_TEXT_CHARS}")));
    }
    Ok(())
}

/// Checks a client's session name: at most 100 characters.
pub(crate) fn check_session(session: Option<&str>) -> Result<(), ApiError> {
    if session.is_some_and(|s| s.chars().count() > 100) {
        return Err(ApiError::bad_field("session", "is longer than 100 characters"));
    }
    Ok(())
}

/// `POST /v1/predict`: answers from the published snapshot; the interaction
/// is queued for the store (written within milliseconds, never waited for).
#[utoipa::path(post, path = "/v1/predict", tag = "assistant", request_body = PredictRequest, responses((status = 200, description = "The answer, from the model published now", body = PredictResponse), (status = 400, description = "A field is missing, of the wrong type, unknown or out of range", body = ErrorResponse), (status = 401, description = "The server has a token and the request lacks it", body = ErrorResponse), (status = 413, description = "The body is over 64 KiB", body = ErrorResponse), (status = 503, description = "The store refused the write (read-only, full, locked); predictions go on", body = ErrorResponse)))]
pub async fn predict(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PredictRequest>, JsonRejection>,
) -> ApiResult<PredictResponse> {
    let Json(request) = body?;
    check_text(&request.text)?;
    check_session(request.session.as_deref())?;
    let snapshot = state.snapshot.load_full();
    let (q, fingerprint) = score(&snapshot, &request.text)?;
    let mut order: Vec<usize> = (0..q.len()).collect();
    order.sort_by(|&a, &b| q[b].total_cmp(&q[a]));
    let best = order[0];
    let confidence = order.get(1).map_or(0.0, |&s| q[best] - q[s]);
    let label = snapshot.labels[best].clone();
    let clarify = (confidence < state.clarify_margin && order.len() > 1).then(|| {
        let c = Clarification::between(&label, &snapshot.labels[order[1]], &request.text);
        ClarifyBody { options: c.options, prompt: c.prompt }
    });
    let top = order.iter().take(5).map(|&i| ScoredIntent { intent: snapshot.labels[i].clone(), q: q[i] }).collect();
    let interaction_id = state.next_interaction.fetch_add(1, Ordering::Relaxed);
    let row = InteractionRow {
        id: interaction_id,
        session: request.session,
        text: request.text.clone(),
        features_hash: format!("{fingerprint:016x}"),
        model_version: snapshot.version,
        intent: label.clone(),
        confidence: f64::from(confidence),
        q_values: serde_json::to_string(&q).unwrap_or_default(),
        unix_ms: now_ms(),
    };
    state.send(WriteOp::Interaction(row))?;
    Ok(Json(PredictResponse {
        interaction_id,
        text: request.text,
        intent: label,
        confidence,
        top,
        clarify,
        model_version: snapshot.version,
    }))
}

/// What the user said about an answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// The answer was right.
    Right,
    /// It was wrong.
    Wrong,
    /// It was wrong; `intent` is right.
    Corrected,
}

impl FeedbackKind {
    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        Feedback::from(self).name()
    }
}

impl From<FeedbackKind> for Feedback {
    fn from(kind: FeedbackKind) -> Self {
        match kind {
            FeedbackKind::Right => Feedback::Right,
            FeedbackKind::Wrong => Feedback::Wrong,
            FeedbackKind::Corrected => Feedback::Corrected,
        }
    }
}

/// `POST /v1/feedback`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The answer's interaction id.
    pub interaction_id: i64,
    /// right, wrong or corrected.
    pub feedback: FeedbackKind,
    /// For `corrected`: the right intent.
    #[serde(default)]
    pub intent: Option<String>,
}

/// `POST /v1/feedback`: committed to the store before this answers; the
/// learner applies it next (`model_version` is the version that includes it).
#[utoipa::path(post, path = "/v1/feedback", tag = "assistant", request_body = FeedbackRequest, responses((status = 200, description = "Committed; the lessons the learner applies next", body = FeedbackAck), (status = 400, description = "A field is missing, of the wrong type, unknown or out of range", body = ErrorResponse), (status = 401, description = "The server has a token and the request lacks it", body = ErrorResponse), (status = 413, description = "The body is over 64 KiB", body = ErrorResponse), (status = 404, description = "No such interaction", body = ErrorResponse), (status = 409, description = "The interaction already has feedback", body = ErrorResponse), (status = 503, description = "The store refused the write (read-only, full, locked); predictions go on", body = ErrorResponse)))]
pub async fn feedback(
    State(state): State<Arc<AppState>>,
    body: Result<Json<FeedbackRequest>, JsonRejection>,
) -> ApiResult<FeedbackAck> {
    let Json(request) = body?;
    let corrected_intent = match (request.feedback, request.intent) {
        (FeedbackKind::Corrected, None) => {
            return Err(ApiError::bad_field("intent", "a correction names the right intent"));
        }
        (FeedbackKind::Corrected, Some(name)) => Some(name),
        (_, Some(_)) => return Err(ApiError::bad_field("intent", "only a correction names an intent")),
        (_, None) => None,
    };
    let (reply, answer) = oneshot::channel();
    state.send(WriteOp::Feedback {
        interaction_id: request.interaction_id,
        feedback: request.feedback,
        corrected_intent,
        reply,
    })?;
    state.wait(answer).await.map(Json)
}

/// `POST /v1/undo`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoRequest {
    /// The interaction whose feedback to take back.
    pub interaction_id: i64,
}

/// `POST /v1/undo`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UndoResponse {
    /// The interaction.
    pub interaction_id: i64,
    /// The feedback taken back.
    pub undone: String,
    /// The version without it.
    pub model_version: i64,
}

/// `POST /v1/undo`.
#[utoipa::path(post, path = "/v1/undo", tag = "assistant", request_body = UndoRequest, responses((status = 200, description = "The feedback taken back", body = UndoResponse), (status = 400, description = "A field is missing, of the wrong type, unknown or out of range", body = ErrorResponse), (status = 401, description = "The server has a token and the request lacks it", body = ErrorResponse), (status = 413, description = "The body is over 64 KiB", body = ErrorResponse), (status = 404, description = "No such interaction", body = ErrorResponse), (status = 409, description = "No feedback in force to undo", body = ErrorResponse), (status = 503, description = "The store refused the write (read-only, full, locked); predictions go on", body = ErrorResponse)))]
pub async fn undo(
    State(state): State<Arc<AppState>>,
    body: Result<Json<UndoRequest>, JsonRejection>,
) -> ApiResult<UndoResponse> {
    let Json(request) = body?;
    let (reply, answer) = oneshot::channel();
    state.send(WriteOp::Undo { interaction_id: request.interaction_id, reply })?;
    state.wait(answer).await.map(Json)
}

/// One intent of the model.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IntentInfo {
    /// Its name.
    pub name: String,
    /// What it does, for built-in intents.
    pub description: Option<String>,
    /// Whether it was added through the API.
    pub added: bool,
}

/// `GET /v1/intents`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IntentsResponse {
    /// Every intent, in output order (those the writer accepts: the learner may not have them yet).
    pub intents: Vec<IntentInfo>,
}

/// `GET /v1/intents`.
#[utoipa::path(get, path = "/v1/intents", tag = "assistant", responses((status = 200, description = "Every intent, in output order", body = IntentsResponse)))]
pub async fn intents(State(state): State<Arc<AppState>>) -> Json<IntentsResponse> {
    let labels = state.labels.read().map(|l| l.clone()).unwrap_or_default();
    let intents = labels
        .into_iter()
        .enumerate()
        .map(|(i, name)| IntentInfo {
            description: describe_intent(&name, Language::En).map(str::to_owned),
            added: i >= state.base_labels,
            name,
        })
        .collect();
    Json(IntentsResponse { intents })
}

/// `POST /v1/intents`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddIntentRequest {
    /// The new intent's name.
    pub name: String,
}

/// `POST /v1/intents`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AddIntentResponse {
    /// The intent.
    pub name: String,
    /// The version that has it.
    pub model_version: i64,
}

/// `POST /v1/intents`: a new intent, learned from corrections naming it.
#[utoipa::path(post, path = "/v1/intents", tag = "assistant", request_body = AddIntentRequest, responses((status = 201, description = "Added; corrections naming it teach it", body = AddIntentResponse), (status = 400, description = "A field is missing, of the wrong type, unknown or out of range", body = ErrorResponse), (status = 401, description = "The server has a token and the request lacks it", body = ErrorResponse), (status = 413, description = "The body is over 64 KiB", body = ErrorResponse), (status = 409, description = "The intent exists", body = ErrorResponse), (status = 503, description = "The store refused the write (read-only, full, locked); predictions go on", body = ErrorResponse)))]
pub async fn add_intent(
    State(state): State<Arc<AppState>>,
    body: Result<Json<AddIntentRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<AddIntentResponse>), ApiError> {
    let Json(request) = body?;
    let name = request.name;
    let valid = !name.is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ApiError::bad_field("name", "1 to 64 letters, digits, `_` or `-`"));
    }
    let (reply, answer) = oneshot::channel();
    state.send(WriteOp::AddIntent { name, reply })?;
    Ok((StatusCode::CREATED, Json(state.wait(answer).await?)))
}

/// Feedback counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedbackCounts {
    /// Confirmed right.
    pub right: i64,
    /// Said wrong.
    pub wrong: i64,
    /// Corrected.
    pub corrected: i64,
}

/// `GET /v1/stats`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsResponse {
    /// Interactions recorded.
    pub interactions: i64,
    /// Feedback in force.
    pub feedback: FeedbackCounts,
    /// Feedback taken back.
    pub undone: i64,
    /// Share right of the last 50 answers with feedback.
    pub accuracy_last_50: Option<f64>,
    /// Share right of the last 200.
    pub accuracy_last_200: Option<f64>,
    /// The last (up to) 200 outcomes, oldest first.
    pub recent: Vec<bool>,
    /// The version including every recorded event.
    pub model_version: i64,
    /// The version answering now.
    pub serving_version: i64,
    /// Events recorded, not yet learned.
    pub learner_backlog: i64,
}

fn accuracy(recent: &[bool], last: usize) -> Option<f64> {
    let tail = &recent[recent.len().saturating_sub(last)..];
    (!tail.is_empty()).then(|| tail.iter().filter(|&&r| r).count() as f64 / tail.len() as f64)
}

/// `GET /v1/stats`.
#[utoipa::path(get, path = "/v1/stats", tag = "assistant", responses((status = 200, description = "Counts, recent accuracy and versions", body = StatsResponse), (status = 503, description = "The store could not be read", body = ErrorResponse)))]
pub async fn stats(State(state): State<Arc<AppState>>) -> ApiResult<StatsResponse> {
    let counts = state.store.counts().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let serving_version = state.snapshot.load().version;
    let model_version = state.base_step + state.last_event.load(Ordering::Relaxed);
    Ok(Json(StatsResponse {
        interactions: counts.interactions,
        feedback: FeedbackCounts { right: counts.right, wrong: counts.wrong, corrected: counts.corrected },
        undone: counts.undone,
        accuracy_last_50: accuracy(&counts.recent, 50),
        accuracy_last_200: accuracy(&counts.recent, 200),
        recent: counts.recent,
        model_version,
        serving_version,
        learner_backlog: if state.learning { model_version - serving_version } else { 0 },
    }))
}

/// `GET /v1/history`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How many, 1 to 1,000 (default 50).
    pub limit: Option<i64>,
}

/// One line of the history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryItem {
    /// The interaction.
    pub interaction_id: i64,
    /// What was said.
    pub text: String,
    /// The answer.
    pub intent: String,
    /// Its confidence.
    pub confidence: f64,
    /// When.
    pub unix_ms: i64,
    /// The session.
    pub session: Option<String>,
    /// Feedback in force.
    pub feedback: Option<String>,
    /// The corrected intent.
    pub corrected_intent: Option<String>,
}

/// `GET /v1/history`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryResponse {
    /// Newest first.
    pub items: Vec<HistoryItem>,
}

/// `GET /v1/history?limit=`.
#[utoipa::path(get, path = "/v1/history", tag = "assistant", params(HistoryQuery), responses((status = 200, description = "The newest interactions with their feedback", body = HistoryResponse), (status = 400, description = "`limit` out of range", body = ErrorResponse), (status = 503, description = "The store could not be read", body = ErrorResponse)))]
pub async fn history(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<HistoryResponse> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be 1 to 1000"));
    }
    let rows = state.store.history(limit).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let items = rows
        .into_iter()
        .map(|r| HistoryItem {
            interaction_id: r.interaction.id,
            text: r.interaction.text,
            intent: r.interaction.intent,
            confidence: r.interaction.confidence,
            unix_ms: r.interaction.unix_ms,
            session: r.interaction.session,
            feedback: r.feedback,
            corrected_intent: r.corrected_intent,
        })
        .collect();
    Ok(Json(HistoryResponse { items }))
}

/// `POST /v1/model/save`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SaveResponse {
    /// The version saved.
    pub model_version: i64,
    /// Its checkpoint, relative to the run folder.
    pub checkpoint: String,
}

/// `POST /v1/model/save`: the learner's model as `versions/<version>` in
/// the run folder (never a path from the request).
#[utoipa::path(post, path = "/v1/model/save", tag = "assistant", responses((status = 200, description = "Saved as `versions/<version>` in the run folder", body = SaveResponse), (status = 401, description = "The server has a token and the request lacks it", body = ErrorResponse), (status = 409, description = "This server runs with --learner off", body = ErrorResponse), (status = 503, description = "The store refused the write (read-only, full, locked); predictions go on", body = ErrorResponse)))]
pub async fn save(State(state): State<Arc<AppState>>) -> ApiResult<SaveResponse> {
    let Some(learner) = &state.learner else {
        return Err(ApiError::new(StatusCode::CONFLICT, "no_learner", "this server runs with --learner off"));
    };
    let (reply, answer) = oneshot::channel();
    learner
        .lock()
        .map_err(|_| ApiError::unavailable("the learner stopped"))?
        .send(super::learner::LearnerMessage::Save(reply))
        .map_err(|_| ApiError::unavailable("the learner stopped"))?;
    let saved = answer
        .await
        .map_err(|_| ApiError::unavailable("the learner stopped"))?
        .map_err(|e| ApiError::unavailable(format!("saving the model: {e}")))?;
    state.store.save_version(&saved, now_ms()).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(SaveResponse { model_version: saved.version, checkpoint: saved.checkpoint }))
}

/// `GET /healthz`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok` when the server answers.
    pub status: String,
    /// The version answering now.
    pub model_version: i64,
}

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The server answers", body = HealthResponse)))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into(), model_version: state.snapshot.load().version })
}

/// The OpenAPI document of this API, generated from the handlers and types above.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rlhf assistant",
        description = "Intent prediction and question answering that learn from feedback with hindsight."
    ),
    paths(
        predict,
        feedback,
        undo,
        intents,
        add_intent,
        stats,
        history,
        save,
        super::answers::answer,
        super::answers::answer_feedback,
        healthz,
        openapi
    ),
    modifiers(&BearerToken),
    tags(
        (name = "assistant", description = "Answers, feedback and the model"),
        (name = "questions", description = "Answers to questions from the knowledge base, and feedback on them"),
        (name = "operations", description = "Health and this document")
    )
)]
pub struct ApiDoc;

/// Declares the bearer token that POST requests need when the server has one.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Write requests (POST) need the server's token, when it has one, as
/// `Authorization: Bearer TOKEN`, compared in constant time.
pub async fn require_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token
        && request.method() == axum::http::Method::POST
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs `Authorization: Bearer TOKEN`",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The embedded page and its assets, with a strict content security policy.
pub async fn asset(uri: axum::http::Uri) -> Response {
    let (body, kind) = match uri.path() {
        "/" | "/index.html" => (include_str!("../../assets/index.html"), "text/html; charset=utf-8"),
        "/app.js" => (include_str!("../../assets/app.js"), "text/javascript; charset=utf-8"),
        "/style.css" => (include_str!("../../assets/style.css"), "text/css; charset=utf-8"),
        _ => return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page").into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
