//! The store's one writer: takes interactions, feedback, undos, new
//! intents, answers and answer feedback in arrival order, writes each burst
//! in one transaction (group commit), answers the requests that wait once it
//! is committed, and hands the committed events to the learners in order.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::answers::{AnswerEvent, AnswerFeedbackKind};
use super::api::{AddIntentResponse, ApiError, FeedbackKind, UndoResponse};
use super::learner::LearnerMessage;
use super::store::{AnswerFeedbackRow, AnswerRow, Event, InteractionRow, Store, StoreError, StoredEvent, now_ms};
use crate::feedback::named_lessons;

/// A lesson as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct LessonBody {
    /// The intent.
    pub intent: String,
    /// Its reward.
    pub reward: f32,
}

/// `POST /v1/feedback`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FeedbackAck {
    /// The event's id in the store.
    pub feedback_id: i64,
    /// The interaction.
    pub interaction_id: i64,
    /// right, wrong or corrected.
    pub feedback: String,
    /// The answer given.
    pub answered: String,
    /// The intent named by a correction.
    pub corrected_intent: Option<String>,
    /// What the learner learns from it (hindsight: a correction teaches −1 for the answer and +1 for the intent named).
    pub lessons: Vec<LessonBody>,
    /// The model version that includes it.
    pub model_version: i64,
}

/// A write, in arrival order.
pub enum WriteOp {
    /// An answered utterance (nobody waits).
    Interaction(InteractionRow),
    /// Feedback; answered once committed.
    Feedback {
        /// The interaction.
        interaction_id: i64,
        /// What the user said.
        feedback: FeedbackKind,
        /// The intent named by a correction.
        corrected_intent: Option<String>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<FeedbackAck, ApiError>>,
    },
    /// Take back an interaction's feedback.
    Undo {
        /// The interaction.
        interaction_id: i64,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<UndoResponse, ApiError>>,
    },
    /// A new intent.
    AddIntent {
        /// Its name.
        name: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<AddIntentResponse, ApiError>>,
    },
    /// An answered question (nobody waits).
    Answer(AnswerRow),
    /// Feedback on an answer; answered with what was stored once committed.
    AnswerFeedback {
        /// The answer.
        answer_id: i64,
        /// What the user said.
        feedback: AnswerFeedbackKind,
        /// For `this_one`: the entry chosen.
        chosen: Option<String>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<AnswerEvent, ApiError>>,
    },
    /// Write what came before, then stop.
    Stop,
}

/// A reply waiting for the commit.
enum Pending {
    Feedback(oneshot::Sender<Result<FeedbackAck, ApiError>>, Result<FeedbackAck, ApiError>),
    Undo(oneshot::Sender<Result<UndoResponse, ApiError>>, Result<UndoResponse, ApiError>),
    AddIntent(oneshot::Sender<Result<AddIntentResponse, ApiError>>, Result<AddIntentResponse, ApiError>),
    AnswerFeedback(oneshot::Sender<Result<AnswerEvent, ApiError>>, Result<AnswerEvent, ApiError>),
}

impl Pending {
    fn fail(self, error: ApiError) {
        match self {
            Pending::Feedback(reply, _) => drop(reply.send(Err(error))),
            Pending::Undo(reply, _) => drop(reply.send(Err(error))),
            Pending::AddIntent(reply, _) => drop(reply.send(Err(error))),
            Pending::AnswerFeedback(reply, _) => drop(reply.send(Err(error))),
        }
    }

    fn answer(self) {
        match self {
            Pending::Feedback(reply, result) => drop(reply.send(result)),
            Pending::Undo(reply, result) => drop(reply.send(result)),
            Pending::AddIntent(reply, result) => drop(reply.send(result)),
            Pending::AnswerFeedback(reply, result) => drop(reply.send(result)),
        }
    }
}

/// The writer's state.
pub struct Writer {
    /// The store.
    pub store: Store,
    /// Labels as the writer knows them (new intents included once committed).
    pub labels: Arc<RwLock<Vec<String>>>,
    /// The last committed event.
    pub last_event: Arc<std::sync::atomic::AtomicI64>,
    /// Versions count from here.
    pub base_step: i64,
    /// Where committed events go, when this process learns.
    pub learner: Option<Arc<Mutex<Sender<LearnerMessage>>>>,
    /// Why the last burst was not stored, until one is: an interaction
    /// missing then may be one the store refused, not an unknown id.
    pub failing: Mutex<Option<String>>,
    /// The last committed answer feedback.
    pub last_answer_feedback: std::sync::atomic::AtomicI64,
    /// Where committed answer feedback goes, when this process learns answers.
    pub answer_learner: Option<Sender<AnswerEvent>>,
}

/// What a burst writes besides events: rows inserted together before the
/// next op that may read them.
#[derive(Default)]
struct Rows {
    interactions: Vec<InteractionRow>,
    answers: Vec<AnswerRow>,
}

/// What a committed burst hands to the learners.
#[derive(Default)]
struct Committed {
    events: Vec<StoredEvent>,
    answer_feedback: Vec<AnswerEvent>,
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

fn not_found(field: &str, what: &str, id: i64) -> ApiError {
    ApiError {
        field: Some(field.into()),
        ..ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} {id}"))
    }
}

impl Writer {
    /// Runs until every sender is dropped, then returns (the last burst committed).
    pub async fn run(self, mut inbox: mpsc::UnboundedReceiver<WriteOp>) {
        let mut burst = Vec::with_capacity(512);
        while inbox.recv_many(&mut burst, 512).await > 0 {
            let stop = burst.iter().position(|op| matches!(op, WriteOp::Stop));
            if let Some(at) = stop {
                burst.truncate(at);
            }
            self.write(std::mem::take(&mut burst)).await;
            if stop.is_some() {
                inbox.close();
                // Requests that raced the stop get an answer, not silence.
                while let Ok(op) = inbox.try_recv() {
                    if let Some(p) = into_pending(op) {
                        p.fail(ApiError::unavailable("the server is stopping"));
                    }
                }
                return;
            }
        }
    }

    async fn write(&self, burst: Vec<WriteOp>) {
        let mut pending = Vec::new();
        let mut committed = Committed::default();
        let first_event = self.last_event.load(Ordering::SeqCst);
        let first_answer_feedback = self.last_answer_feedback.load(Ordering::SeqCst);
        let labels_before = self.labels.read().map(|l| l.clone()).unwrap_or_default();
        let result = self.write_burst(burst, &mut pending, &mut committed).await;
        if let Ok(mut failing) = self.failing.lock() {
            *failing = result.as_ref().err().map(ToString::to_string);
        }
        match result {
            Ok(()) => {
                for p in pending {
                    p.answer();
                }
                if let Some(learner) = &self.learner
                    && let Ok(sender) = learner.lock()
                {
                    for event in committed.events {
                        let _ = sender.send(LearnerMessage::Event(event));
                    }
                }
                if let Some(learner) = &self.answer_learner {
                    for event in committed.answer_feedback {
                        let _ = learner.send(event);
                    }
                }
            }
            Err(e) => {
                tracing::error!("{e}");
                // Nothing of the burst is stored: roll back what the writer counted.
                self.last_event.store(first_event, Ordering::SeqCst);
                self.last_answer_feedback.store(first_answer_feedback, Ordering::SeqCst);
                if let Ok(mut labels) = self.labels.write() {
                    *labels = labels_before;
                }
                for p in pending {
                    p.fail(ApiError::unavailable(format!("the feedback was not stored: {e}")));
                }
            }
        }
    }

    async fn write_burst(
        &self,
        burst: Vec<WriteOp>,
        pending: &mut Vec<Pending>,
        committed: &mut Committed,
    ) -> Result<(), StoreError> {
        let mut tx = match self.store.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                pending.extend(burst.into_iter().filter_map(into_pending));
                return Err(e);
            }
        };
        let mut rows = Rows::default();
        let mut ops = burst.into_iter();
        while let Some(op) = ops.next() {
            if let Err(e) = self.apply(&mut tx, op, &mut rows, pending, committed).await {
                pending.extend(ops.filter_map(into_pending));
                return Err(e);
            }
        }
        self.insert_rows(&mut tx, &mut rows).await?;
        self.store.commit(tx).await
    }

    fn next_event(&self) -> i64 {
        self.last_event.fetch_add(1, Ordering::SeqCst) + 1
    }

    async fn insert_rows(&self, tx: &mut sqlx::AnyConnection, rows: &mut Rows) -> Result<(), StoreError> {
        self.store.insert_interactions(tx, &std::mem::take(&mut rows.interactions)).await?;
        self.store.insert_answers(tx, &std::mem::take(&mut rows.answers)).await
    }

    /// Why an id the client names may be missing: a store refusing writes,
    /// else an unknown id.
    fn missing(&self, field: &str, what: &str, id: i64) -> ApiError {
        match self.failing.lock().ok().and_then(|f| f.clone()) {
            Some(why) => ApiError::unavailable(format!("{what} {id} was not stored: {why}")),
            None => not_found(field, what, id),
        }
    }

    async fn apply(
        &self,
        tx: &mut sqlx::AnyConnection,
        op: WriteOp,
        rows: &mut Rows,
        pending: &mut Vec<Pending>,
        committed: &mut Committed,
    ) -> Result<(), StoreError> {
        // Interactions and answers are inserted together (interactions one
        // statement per hundred), before the next op, which may read them.
        let op = match op {
            WriteOp::Interaction(row) => {
                rows.interactions.push(row);
                return Ok(());
            }
            WriteOp::Answer(row) => {
                rows.answers.push(row);
                return Ok(());
            }
            op => op,
        };
        if let Err(e) = self.insert_rows(tx, rows).await {
            pending.extend(into_pending(op));
            return Err(e);
        }
        let events = &mut committed.events;
        match op {
            WriteOp::Interaction(_) | WriteOp::Answer(_) | WriteOp::Stop => Ok(()),
            WriteOp::Feedback { interaction_id, feedback, corrected_intent, reply } => {
                let Some((text, answered)) = self.store.interaction(tx, interaction_id).await? else {
                    let error = self.missing("interaction_id", "interaction", interaction_id);
                    pending.push(Pending::Feedback(reply, Err(error)));
                    return Ok(());
                };
                if let Some((event, given)) = self.store.feedback_in_force(tx, interaction_id).await? {
                    let message = format!(
                        "interaction {interaction_id} already has feedback `{given}` (event {event}); undo it first"
                    );
                    pending.push(Pending::Feedback(reply, Err(conflict(message))));
                    return Ok(());
                }
                let labels = self.labels.read().map(|l| l.clone()).unwrap_or_default();
                // Naming the answer given is confirming it.
                let feedback = match &corrected_intent {
                    Some(c) if *c == answered => FeedbackKind::Right,
                    _ => feedback,
                };
                let corrected_intent = corrected_intent.filter(|_| feedback == FeedbackKind::Corrected);
                let taught = match named_lessons(&labels, &answered, feedback.into(), corrected_intent.clone()) {
                    Ok(taught) => taught,
                    Err(e) => {
                        pending.push(Pending::Feedback(reply, Err(ApiError::bad_field("intent", e.to_string()))));
                        return Ok(());
                    }
                };
                let id = self.next_event();
                let event = Event::Feedback {
                    interaction_id,
                    feedback: feedback.as_str().into(),
                    answered: answered.clone(),
                    corrected_intent: corrected_intent.clone(),
                    text,
                };
                let unix_ms = now_ms();
                self.store.insert_event(tx, id, &event, unix_ms).await?;
                events.push(StoredEvent { id, unix_ms, event });
                let ack = FeedbackAck {
                    feedback_id: id,
                    interaction_id,
                    feedback: feedback.as_str().into(),
                    answered,
                    corrected_intent,
                    lessons: taught
                        .iter()
                        .map(|&(a, reward)| LessonBody { intent: labels[a].clone(), reward })
                        .collect(),
                    model_version: self.base_step + id,
                };
                pending.push(Pending::Feedback(reply, Ok(ack)));
                Ok(())
            }
            WriteOp::Undo { interaction_id, reply } => {
                let Some((undoes, given)) = self.store.feedback_in_force(tx, interaction_id).await? else {
                    let message = format!("interaction {interaction_id} has no feedback to undo");
                    pending.push(Pending::Undo(reply, Err(conflict(message))));
                    return Ok(());
                };
                let id = self.next_event();
                let event = Event::Undo { undoes };
                let unix_ms = now_ms();
                self.store.insert_event(tx, id, &event, unix_ms).await?;
                events.push(StoredEvent { id, unix_ms, event });
                let response = UndoResponse { interaction_id, undone: given, model_version: self.base_step + id };
                pending.push(Pending::Undo(reply, Ok(response)));
                Ok(())
            }
            WriteOp::AddIntent { name, reply } => {
                if self.labels.read().map(|l| l.contains(&name)).unwrap_or(true) {
                    let message = format!("`{name}` is already an intent");
                    pending.push(Pending::AddIntent(
                        reply,
                        Err(ApiError { field: Some("name".into()), ..conflict(message) }),
                    ));
                    return Ok(());
                }
                let id = self.next_event();
                let event = Event::AddIntent { name: name.clone() };
                let unix_ms = now_ms();
                self.store.insert_event(tx, id, &event, unix_ms).await?;
                events.push(StoredEvent { id, unix_ms, event });
                if let Ok(mut labels) = self.labels.write() {
                    labels.push(name.clone());
                }
                pending.push(Pending::AddIntent(
                    reply,
                    Ok(AddIntentResponse { name, model_version: self.base_step + id }),
                ));
                Ok(())
            }
            WriteOp::AnswerFeedback { answer_id, feedback, chosen, reply } => {
                let Some(answer) = self.store.answer(tx, answer_id).await? else {
                    let error = self.missing("answer_id", "answer", answer_id);
                    pending.push(Pending::AnswerFeedback(reply, Err(error)));
                    return Ok(());
                };
                if let Some((id, given)) = self.store.answer_feedback_given(tx, answer_id).await? {
                    let message = format!("answer {answer_id} already has feedback `{given}` (answer feedback {id})");
                    pending.push(Pending::AnswerFeedback(reply, Err(conflict(message))));
                    return Ok(());
                }
                // Choosing the entry answered is confirming it.
                let (feedback, chosen) = match chosen {
                    Some(c) if Some(&c) == answer.answered.as_ref() => (AnswerFeedbackKind::Right, None),
                    chosen => (feedback, chosen),
                };
                let row = AnswerFeedbackRow {
                    id: self.last_answer_feedback.fetch_add(1, Ordering::SeqCst) + 1,
                    answer_id,
                    feedback: feedback.as_str().into(),
                    chosen,
                    unix_ms: now_ms(),
                };
                self.store.insert_answer_feedback(tx, &row).await?;
                committed.answer_feedback.push((row.clone(), answer.clone()));
                pending.push(Pending::AnswerFeedback(reply, Ok((row, answer))));
                Ok(())
            }
        }
    }
}

/// The reply of a write that could not be done, to fail it.
fn into_pending(op: WriteOp) -> Option<Pending> {
    let unstored = || ApiError::unavailable("not stored");
    match op {
        WriteOp::Interaction(_) | WriteOp::Answer(_) | WriteOp::Stop => None,
        WriteOp::Feedback { reply, .. } => Some(Pending::Feedback(reply, Err(unstored()))),
        WriteOp::Undo { reply, .. } => Some(Pending::Undo(reply, Err(unstored()))),
        WriteOp::AddIntent { reply, .. } => Some(Pending::AddIntent(reply, Err(unstored()))),
        WriteOp::AnswerFeedback { reply, .. } => Some(Pending::AnswerFeedback(reply, Err(unstored()))),
    }
}
