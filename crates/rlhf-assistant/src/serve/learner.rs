//! The one learner: applies stored events in order to an online learner and
//! publishes each new model as an immutable [`Snapshot`] that answers read.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use burn::tensor::backend::AutodiffBackend;
use rlhf_model::HostQNetwork;

use super::store::{Event, SavedVersion, StoredEvent, version_dir};
use crate::AssistantError;
use crate::features::IntentFeatures;
use crate::feedback::{Feedback, named_lessons};
use crate::online::OnlineLearner;
use crate::pipeline::{IntentModelSpec, save_intent_model};

/// A model as answers see it: never changed once published.
#[derive(Debug)]
pub struct Snapshot {
    /// Its version: the base step plus the last event it includes.
    pub version: i64,
    /// The network, on the host.
    pub host: HostQNetwork,
    /// The labels, in output order.
    pub labels: Arc<Vec<String>>,
    /// How text becomes the network's input.
    pub featurizer: IntentFeatures,
}

/// Lowers the calling thread (the learner's) to background priority:
/// learning must never take the CPU from answers. On Linux the thread gets
/// `SCHED_IDLE`, so it runs only on a core nothing else wants (under full
/// load the backlog waits, and `/v1/stats` shows it); elsewhere the lowest
/// priority of the normal policy.
pub fn run_in_background() {
    #[cfg(target_os = "linux")]
    let lowered = {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
    };
    #[cfg(not(target_os = "linux"))]
    let lowered = thread_priority::ThreadPriority::Min.set_for_current();
    if let Err(e) = lowered {
        tracing::warn!("the learner runs at normal priority: {e:?}");
    }
}

/// The longest a learner keeps learned events unpublished while its queue
/// is never empty (sustained feedback faster than it learns): answers then
/// lag the learner by at most this, plus one copy of the weights.
pub const PUBLISH_AT_LEAST_EVERY: Duration = Duration::from_millis(200);

/// A learner's next step: a message to handle, or publishing what it has
/// learned (`None`): when its queue is empty, or at least every
/// [`PUBLISH_AT_LEAST_EVERY`] while it has unpublished work (`dirty`).
/// `Err` when the inbox has closed.
pub(super) fn next_message<T>(
    inbox: &Receiver<T>,
    dirty: bool,
    published_at: Instant,
) -> Result<Option<T>, RecvTimeoutError> {
    if !dirty {
        return inbox.recv().map(Some).map_err(|_| RecvTimeoutError::Disconnected);
    }
    if published_at.elapsed() >= PUBLISH_AT_LEAST_EVERY {
        return Ok(None);
    }
    match inbox.recv_timeout(Duration::ZERO) {
        Ok(message) => Ok(Some(message)),
        Err(RecvTimeoutError::Timeout) => Ok(None),
        Err(closed) => Err(closed),
    }
}

/// What the learner thread is asked to do.
pub enum LearnerMessage {
    /// Apply a committed event.
    Event(StoredEvent),
    /// Save the current model; answers with the saved version.
    Save(tokio::sync::oneshot::Sender<Result<SavedVersion, AssistantError>>),
    /// Stop: save the model if it learned anything since its last saved
    /// version (answered with that version), then end.
    Stop(tokio::sync::oneshot::Sender<Option<Result<SavedVersion, AssistantError>>>),
}

/// A learned event the learner can still take back.
struct Learned {
    event: i64,
    text: String,
    lessons: Vec<(usize, f32)>,
}

/// The learner's state (see the module docs).
pub struct Learner<B: AutodiffBackend> {
    learner: OnlineLearner<B>,
    featurizer: IntentFeatures,
    base_step: i64,
    last_event: i64,
    /// The last event in the newest saved version.
    saved_through: i64,
    /// The newest learned feedback, newest last, at most the undo depth.
    learned: VecDeque<Learned>,
    undo_depth: usize,
    run_dir: PathBuf,
    backend: String,
    seed: u64,
}

impl<B: AutodiffBackend> Learner<B> {
    /// A learner at event `last_event` (the events up to it are in `learner`'s network).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        learner: OnlineLearner<B>,
        featurizer: IntentFeatures,
        base_step: i64,
        last_event: i64,
        undo_depth: usize,
        run_dir: PathBuf,
        backend: String,
        seed: u64,
    ) -> Self {
        Self {
            learner,
            featurizer,
            base_step,
            last_event,
            saved_through: last_event,
            learned: VecDeque::new(),
            undo_depth,
            run_dir,
            backend,
            seed,
        }
    }

    /// The version of the model as it is now.
    pub fn version(&self) -> i64 {
        self.base_step + self.last_event
    }

    /// The labels, in output order.
    pub fn labels(&self) -> &[String] {
        self.learner.labels()
    }

    /// The model as it is now, for answers.
    pub fn snapshot(&self) -> Result<Snapshot, AssistantError> {
        Ok(Snapshot {
            version: self.version(),
            host: self.learner.host_network()?,
            labels: Arc::new(self.learner.labels().to_vec()),
            featurizer: self.featurizer.clone(),
        })
    }

    /// Applies one event (events at or before the last applied are skipped).
    pub fn apply(&mut self, stored: &StoredEvent) -> Result<(), AssistantError> {
        if stored.id <= self.last_event {
            return Ok(());
        }
        match &stored.event {
            Event::Feedback { feedback, answered, corrected_intent, text, .. } => {
                let feedback = Feedback::from_name(feedback).ok_or_else(|| AssistantError::Invalid {
                    what: format!("event {}", stored.id),
                    reason: format!("unknown feedback `{feedback}`"),
                })?;
                let taught = named_lessons(self.learner.labels(), answered, feedback, corrected_intent.clone())?;
                self.learner.learn(text, &taught)?;
                if self.learned.len() == self.undo_depth {
                    self.learned.pop_front();
                }
                self.learned.push_back(Learned { event: stored.id, text: text.clone(), lessons: taught });
            }
            Event::Undo { undoes } => self.undo(*undoes)?,
            Event::AddIntent { name } => {
                self.learner.add_intent(name, self.seed ^ stored.id as u64)?;
                // The learner forgot its undo history with the old output layer.
                self.learned.clear();
            }
        }
        self.last_event = stored.id;
        Ok(())
    }

    /// Takes back the feedback event `undoes`: the model returns to the
    /// state before it and relearns the feedback that came after. Feedback
    /// older than the undo depth stays learned (a warning says so).
    fn undo(&mut self, undoes: i64) -> Result<(), AssistantError> {
        let Some(position) = self.learned.iter().position(|l| l.event == undoes) else {
            tracing::warn!("undo of event {undoes}: older than the learner's undo depth, its lessons stay learned");
            return Ok(());
        };
        let later: Vec<Learned> = self.learned.drain(position..).collect();
        for _ in 0..later.len() {
            if !self.learner.undo() {
                tracing::warn!("undo of event {undoes}: the learner's history ran out");
                break;
            }
        }
        for again in later.into_iter().skip(1) {
            self.learner.learn(&again.text, &again.lessons)?;
            self.learned.push_back(again);
        }
        Ok(())
    }

    /// Saves the model under the run folder as `versions/<version>`.
    pub fn save(&mut self) -> Result<SavedVersion, AssistantError> {
        let version = self.version();
        let checkpoint = version_dir(version);
        let spec = IntentModelSpec::new(self.learner.labels().to_vec(), &self.featurizer);
        save_intent_model(
            &self.run_dir.join(&checkpoint),
            self.learner.network(),
            &spec,
            u64::try_from(version).unwrap_or(0),
            self.backend.clone(),
            serde_json::json!({ "served": true, "last_event": self.last_event }),
        )?;
        self.saved_through = self.last_event;
        Ok(SavedVersion { version, checkpoint, last_event: self.last_event })
    }

    /// Runs until `inbox` closes or a `Stop` arrives: applies events as they
    /// come and publishes a snapshot once the queue is empty (not after every
    /// event, so a burst of feedback costs one copy of the weights), or
    /// [`PUBLISH_AT_LEAST_EVERY`] under sustained feedback. Once
    /// `stopping` is set, queued events are left unlearned: they are in the
    /// store, and the next start replays them after the version saved at stop.
    pub fn run(
        mut self,
        inbox: Receiver<LearnerMessage>,
        published: Arc<ArcSwap<Snapshot>>,
        stopping: Arc<AtomicBool>,
    ) {
        let mut dirty = false;
        let mut published_at = Instant::now();
        loop {
            let Ok(message) = next_message(&inbox, dirty, published_at) else { return };
            match message {
                Some(LearnerMessage::Event(_)) if stopping.load(Ordering::Relaxed) => {}
                Some(LearnerMessage::Event(event)) => {
                    if let Err(e) = self.apply(&event) {
                        tracing::error!("learning event {}: {e}", event.id);
                    }
                    dirty = true;
                }
                Some(LearnerMessage::Stop(reply)) => {
                    let _ = reply.send((self.last_event > self.saved_through).then(|| self.save()));
                    return;
                }
                Some(LearnerMessage::Save(reply)) => {
                    let _ = reply.send(self.save());
                }
                None => {
                    match self.snapshot() {
                        Ok(snapshot) => published.store(Arc::new(snapshot)),
                        Err(e) => tracing::error!("publishing the model: {e}"),
                    }
                    dirty = false;
                    published_at = Instant::now();
                }
            }
        }
    }
}
