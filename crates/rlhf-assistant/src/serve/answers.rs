//! Questions over HTTP: `POST /v1/answer` answers from the answer model
//! (`cargo xtask qa` trains it, [`crate::qa`]), `POST /v1/answer/feedback`
//! records what the user said about the answer in the same store as the
//! intents' feedback, and the answer learner learns from it with hindsight
//! ("this one" and "none of these" teach every candidate shown).
//!
//! It runs as the intent side does: answers read an immutable
//! [`AnswerSnapshot`]; the store's one writer assigns ids and commits; one
//! background thread applies the committed feedback in order and publishes
//! a new snapshot when its queue is empty. The answer model's version is the
//! number of feedback rows it has learned. A server that stops saves what
//! the answer model learned as `answer-versions/<version>` in its run folder
//! (recorded in the store); a restarted server loads that version (when it
//! was learned from the answer model it is given now) and replays the stored
//! answer feedback after it, in order: the same model the stopped server
//! had, bit for bit. Without a saved version (a kill, say) it replays all
//! of it onto the answer model it was given.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::AppState;
use super::api::{ApiError, ErrorResponse, check_session, check_text};
use super::learner::next_message;
use super::store::{AnswerFeedbackRow, AnswerRow, SavedAnswerModel, now_ms};
use super::writer::WriteOp;
use crate::qa::PairConfig;
use crate::qa::pair::HostPair;
use crate::qa::{AnswerIndex, AnswerRewards, QaFeedback, QaLearnConfig, QaLearner, QaModel, lessons};
use crate::{AssistantError, Language};

/// The answer model as answers see it: never changed once published.
pub struct AnswerSnapshot {
    /// How many feedback rows it has learned.
    pub version: i64,
    /// The pair network, on the host.
    pub host: HostPair,
    /// The knowledge base, indexed.
    pub index: Arc<AnswerIndex>,
}

/// What the question-answering handlers share (in [`AppState`] when the
/// server has an answer model).
pub struct Answers {
    /// The answer model answering now.
    pub snapshot: Arc<ArcSwap<AnswerSnapshot>>,
    /// The next answer's id.
    pub next_answer: AtomicI64,
    /// What the learner teaches with (for the lessons a feedback shows).
    pub rewards: AnswerRewards,
    /// Whether corrections are relabeled with hindsight.
    pub hindsight: bool,
}

/// A committed answer feedback and the answer it is about: what the learner applies.
pub type AnswerEvent = (AnswerFeedbackRow, AnswerRow);

/// The position of the entry `id` in `index`'s knowledge base.
fn entry_of(index: &AnswerIndex, id: &str) -> Option<usize> {
    index.kb().entries().iter().position(|e| e.id == id)
}

/// The learner's view of a stored feedback: the candidates shown, the entry
/// answered and what the user said, as positions in `index`'s knowledge base.
fn taught_by(
    index: &AnswerIndex,
    feedback: &AnswerFeedbackRow,
    answer: &AnswerRow,
) -> Result<(Vec<usize>, Option<usize>, QaFeedback), String> {
    let known = |id: &str| entry_of(index, id).ok_or_else(|| format!("entry `{id}` is not in the knowledge base"));
    let candidates = answer.candidates.iter().map(|c| known(c)).collect::<Result<Vec<_>, _>>()?;
    let answered = answer.answered.as_deref().map(known).transpose()?;
    let said = match (feedback.feedback.as_str(), feedback.chosen.as_deref()) {
        ("right", _) => QaFeedback::Right,
        ("wrong", _) => QaFeedback::Wrong,
        ("none_of_these", _) => QaFeedback::NoneOfThese,
        ("this_one", Some(chosen)) => QaFeedback::ThisOne(known(chosen)?),
        (other, chosen) => return Err(format!("feedback `{other}` (chosen {chosen:?}) is not one this server knows")),
    };
    Ok((candidates, answered, said))
}

/// The answer learner's state: the pair network learning from the stored
/// feedback, in order.
pub struct AnswerLearner<B: AutodiffBackend> {
    learner: QaLearner<B>,
    index: Arc<AnswerIndex>,
    pair: PairConfig,
    last: i64,
    /// The last feedback in the newest saved version.
    saved_through: i64,
    /// Where versions are saved.
    run_dir: PathBuf,
    /// The fingerprint of the answer model the server was given.
    base: String,
}

impl<B: AutodiffBackend> AnswerLearner<B> {
    /// A learner starting from `model`, which has learned the feedback up
    /// to `version`, rehearsing its knowledge base's training phrasings; it
    /// saves versions of it under `run_dir`, as learned from the answer
    /// model of fingerprint `base`.
    pub fn new(
        model: QaModel<B>,
        version: i64,
        config: QaLearnConfig,
        seed: u64,
        run_dir: PathBuf,
        base: String,
    ) -> Result<Self, AssistantError> {
        let QaModel { network, index, rewards, pair } = model;
        let config = QaLearnConfig { rewards, ..config };
        let rehearsal = index.kb().questions(crate::Split::Train);
        let learner = QaLearner::new(network, config, seed)?.with_rehearsal(rehearsal);
        Ok(Self { learner, index: Arc::new(index), pair, last: version, saved_through: version, run_dir, base })
    }

    /// Saves the model as it is now under the run folder, as `answer-versions/<version>`.
    pub fn save(&mut self) -> Result<SavedAnswerModel, AssistantError> {
        let dir = format!("answer-versions/{}", self.last);
        let model = QaModel {
            network: self.learner.network().clone(),
            index: (*self.index).clone(),
            rewards: self.learner.config().rewards,
            pair: self.pair,
        };
        model.save(&self.run_dir.join(&dir))?;
        self.saved_through = self.last;
        Ok(SavedAnswerModel { version: self.last, dir, base: self.base.clone() })
    }

    /// The settings it learns with.
    pub fn config(&self) -> &QaLearnConfig {
        self.learner.config()
    }

    /// The model as it is now, for answers.
    pub fn snapshot(&self) -> Result<AnswerSnapshot, AssistantError> {
        Ok(AnswerSnapshot { version: self.last, host: self.learner.valid().to_host()?, index: self.index.clone() })
    }

    /// Learns one stored feedback (those at or before the last applied are
    /// skipped). Feedback naming entries this knowledge base lacks (the store
    /// outlived a model) is skipped with a warning and still counted.
    pub fn apply(&mut self, (feedback, answer): &AnswerEvent) -> Result<(), AssistantError> {
        if feedback.id <= self.last {
            return Ok(());
        }
        match taught_by(&self.index, feedback, answer) {
            Ok((candidates, answered, said)) => {
                // The question as heard again: the same features and
                // retrieval scores; the candidates are those the user saw.
                let mut retrieved = self.index.retrieve(&answer.text);
                retrieved.candidates = candidates;
                self.learner.learn(&self.index, &retrieved, answered, said)?;
            }
            Err(why) => tracing::warn!("answer feedback {} not learned: {why}", feedback.id),
        }
        self.last = feedback.id;
        Ok(())
    }

    /// Runs until `inbox` closes: learns feedback as it comes and publishes a
    /// snapshot once the queue is empty, or [`PUBLISH_AT_LEAST_EVERY`](super::learner::PUBLISH_AT_LEAST_EVERY) under
    /// sustained feedback. Once `stopping` is set, queued feedback is left to
    /// the next start's replay. At the end it saves what it learned since
    /// its last saved version, if anything, and returns that version.
    pub fn run(
        mut self,
        inbox: Receiver<AnswerEvent>,
        published: Arc<ArcSwap<AnswerSnapshot>>,
        stopping: Arc<AtomicBool>,
    ) -> Option<Result<SavedAnswerModel, AssistantError>> {
        let mut dirty = false;
        let mut published_at = Instant::now();
        while let Ok(event) = next_message(&inbox, dirty, published_at) {
            match event {
                Some(_) if stopping.load(Ordering::Relaxed) => {}
                Some(event) => {
                    if let Err(e) = self.apply(&event) {
                        tracing::error!("learning answer feedback {}: {e}", event.0.id);
                    }
                    dirty = true;
                }
                None if dirty => {
                    match self.snapshot() {
                        Ok(snapshot) => published.store(Arc::new(snapshot)),
                        Err(e) => tracing::error!("publishing the answer model: {e}"),
                    }
                    dirty = false;
                    published_at = Instant::now();
                }
                None => {}
            }
        }
        (self.last > self.saved_through).then(|| self.save())
    }
}

/// `POST /v1/answer`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The question, 1 to 2,000 characters.
    pub text: String,
    /// The client's session (at most 100 characters).
    #[serde(default)]
    pub session: Option<String>,
}

/// One candidate answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CandidateBody {
    /// The knowledge base entry.
    pub entry_id: String,
    /// A question it answers, in the question's language.
    pub question: String,
    /// Its answer, in the question's language.
    pub answer: String,
    /// The model's Q-value of answering with it.
    pub q: f32,
}

/// `POST /v1/answer`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnswerResponse {
    /// The id feedback refers to.
    pub answer_id: i64,
    /// The question.
    pub text: String,
    /// The entry answered; `null`: the model says "I don't know".
    pub entry_id: Option<String>,
    /// The answer, in the question's language; `null` with `entry_id`.
    pub answer: Option<String>,
    /// The candidates the retriever found, the model's best first.
    pub candidates: Vec<CandidateBody>,
    /// The Q-value of "I don't know".
    pub abstain_q: f32,
    /// The answer model that answered (how many feedback rows it has learned).
    pub model_version: i64,
}

fn no_answer_model() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_answer_model",
        "this server answers no questions: start it with an answer model (`cargo xtask qa` trains one)",
    )
}

/// `POST /v1/answer`: answers from the published answer model; the answer is
/// queued for the store (never waited for).
#[utoipa::path(post, path = "/v1/answer", tag = "questions", request_body = AnswerRequest, responses((status = 200, description = "The answer and the candidates, from the answer model published now", body = AnswerResponse), (status = 400, description = "A field is missing, of the wrong type, unknown or out of range", body = ErrorResponse), (status = 401, description = "The server has a token and the request lacks it", body = ErrorResponse), (status = 404, description = "The server has no answer model", body = ErrorResponse), (status = 413, description = "The body is over 64 KiB", body = ErrorResponse), (status = 503, description = "The store's writer stopped", body = ErrorResponse)))]
pub async fn answer(
    State(state): State<Arc<AppState>>,
    body: Result<Json<AnswerRequest>, JsonRejection>,
) -> Result<Json<AnswerResponse>, ApiError> {
    let Json(request) = body?;
    check_text(&request.text)?;
    check_session(request.session.as_deref())?;
    let answers = state.answers.as_ref().ok_or_else(no_answer_model)?;
    let snapshot = answers.snapshot.load_full();
    let index = &snapshot.index;
    let decision = index.decide_host(&snapshot.host, index.retrieve(&request.text));
    let entries = index.kb().entries();
    let language = Language::of_text(&request.text);
    let candidates = decision
        .ranked()
        .into_iter()
        .map(|(entry, q)| CandidateBody {
            entry_id: entries[entry].id.clone(),
            question: entries[entry].questions(language).first().cloned().unwrap_or_default(),
            answer: entries[entry].answer(language).to_owned(),
            q,
        })
        .collect();
    let chosen = decision.choice();
    let answered = chosen.map(|c| entries[c].id.clone());
    let answer_id = answers.next_answer.fetch_add(1, Ordering::Relaxed);
    let row = AnswerRow {
        id: answer_id,
        session: request.session,
        text: request.text.clone(),
        model_version: snapshot.version,
        candidates: decision.retrieved.candidates.iter().map(|&c| entries[c].id.clone()).collect(),
        q_values: decision.q.clone(),
        abstain_q: f64::from(decision.abstain_q),
        answered: answered.clone(),
        unix_ms: now_ms(),
    };
    state.send(WriteOp::Answer(row))?;
    Ok(Json(AnswerResponse {
        answer_id,
        text: request.text,
        entry_id: answered,
        answer: chosen.map(|c| entries[c].answer(language).to_owned()),
        candidates,
        abstain_q: decision.abstain_q,
        model_version: snapshot.version,
    }))
}

/// What the user said about an answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFeedbackKind {
    /// The answer (or "I don't know") was right.
    Right,
    /// It was wrong; nothing more said.
    Wrong,
    /// The entry `entry_id` answers the question.
    ThisOne,
    /// No candidate answers the question.
    NoneOfThese,
}

impl AnswerFeedbackKind {
    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Right => "right",
            Self::Wrong => "wrong",
            Self::ThisOne => "this_one",
            Self::NoneOfThese => "none_of_these",
        }
    }
}

/// `POST /v1/answer/feedback`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerFeedbackRequest {
    /// The answer's id.
    pub answer_id: i64,
    /// right, wrong, this_one or none_of_these.
    pub feedback: AnswerFeedbackKind,
    /// For `this_one`: the entry that answers the question (any entry of the knowledge base).
    #[serde(default)]
    pub entry_id: Option<String>,
}

/// A lesson as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AnswerLessonBody {
    /// The entry; `null`: "I don't know".
    pub entry_id: Option<String>,
    /// The Q-value the learner moves it toward.
    pub target: f32,
}

/// `POST /v1/answer/feedback`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AnswerFeedbackAck {
    /// The feedback's id in the store (its place in the learner's order).
    pub feedback_id: i64,
    /// The answer.
    pub answer_id: i64,
    /// right, wrong, this_one or none_of_these.
    pub feedback: String,
    /// The entry answered; `null`: "I don't know".
    pub answered: Option<String>,
    /// For `this_one`: the entry chosen.
    pub chosen: Option<String>,
    /// What the learner learns from it (hindsight: "this one" teaches the
    /// entry chosen as right and every other candidate as wrong).
    pub lessons: Vec<AnswerLessonBody>,
    /// The answer model version that includes it.
    pub model_version: i64,
}

/// `POST /v1/answer/feedback`: committed to the store before this answers;
/// the answer learner applies it next.
#[utoipa::path(post, path = "/v1/answer/feedback", tag = "questions", request_body = AnswerFeedbackRequest, responses((status = 200, description = "Committed; the lessons the learner applies next", body = AnswerFeedbackAck), (status = 400, description = "A field is missing, of the wrong type, unknown or out of range", body = ErrorResponse), (status = 401, description = "The server has a token and the request lacks it", body = ErrorResponse), (status = 404, description = "No such answer, or no answer model", body = ErrorResponse), (status = 409, description = "The answer already has feedback", body = ErrorResponse), (status = 413, description = "The body is over 64 KiB", body = ErrorResponse), (status = 503, description = "The store refused the write (read-only, full, locked); answers go on", body = ErrorResponse)))]
pub async fn answer_feedback(
    State(state): State<Arc<AppState>>,
    body: Result<Json<AnswerFeedbackRequest>, JsonRejection>,
) -> Result<Json<AnswerFeedbackAck>, ApiError> {
    let Json(request) = body?;
    let answers = state.answers.as_ref().ok_or_else(no_answer_model)?;
    let snapshot = answers.snapshot.load_full();
    let chosen = match (request.feedback, request.entry_id) {
        (AnswerFeedbackKind::ThisOne, None) => {
            return Err(ApiError::bad_field("entry_id", "`this_one` names the entry that answers the question"));
        }
        (AnswerFeedbackKind::ThisOne, Some(id)) if entry_of(&snapshot.index, &id).is_none() => {
            return Err(ApiError::bad_field("entry_id", format!("no entry `{id}` in the knowledge base")));
        }
        (AnswerFeedbackKind::ThisOne, Some(id)) => Some(id),
        (_, Some(_)) => return Err(ApiError::bad_field("entry_id", "only `this_one` names an entry")),
        (_, None) => None,
    };
    let (reply, committed) = oneshot::channel();
    state.send(WriteOp::AnswerFeedback { answer_id: request.answer_id, feedback: request.feedback, chosen, reply })?;
    let (feedback, answer) = state.wait(committed).await?;
    let index = &snapshot.index;
    let (candidates, answered, said) = taught_by(index, &feedback, &answer)
        .map_err(|why| ApiError::new(StatusCode::CONFLICT, "conflict", format!("stored, but not learnable: {why}")))?;
    let entries = index.kb().entries();
    let lessons = lessons(&candidates, answered, said, answers.hindsight, &answers.rewards)
        .into_iter()
        .map(|(entry, target)| AnswerLessonBody { entry_id: entry.map(|e| entries[e].id.clone()), target })
        .collect();
    Ok(Json(AnswerFeedbackAck {
        feedback_id: feedback.id,
        answer_id: answer.id,
        feedback: feedback.feedback,
        answered: answer.answered,
        chosen: feedback.chosen,
        lessons,
        model_version: feedback.id,
    }))
}
