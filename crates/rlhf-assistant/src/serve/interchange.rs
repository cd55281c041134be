//! The store and the JSON-lines feedback log ([`crate::feedback`]), the
//! interchange format that `cargo xtask assistant` writes and
//! `cargo xtask finetune --feedback` reads: `cargo xtask feedback
//! export|import` move feedback between them.
//!
//! Export writes, in time order: each feedback as an interaction record
//! carrying it (the utterance, its answer and Q-values, the feedback), each
//! undo as an `undo` of that record, each intent added as `add_intent`, and
//! each interaction that never got feedback as a record with feedback
//! `missing`. Import appends a log to a store the same way (an interaction
//! per record, an event per feedback, undo and intent added), so a log
//! exported, imported into an empty store and exported again is the same
//! log, line for line. (A store's interaction judged twice, with an undo
//! between, becomes two records, and so two interactions after import.)
//!
//! Import into a store no server is writing to: a running server numbers
//! interactions and events itself (restart it after importing).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::store::{Event, InteractionRow, Store, StoreError};
use crate::AssistantError;
use crate::feedback::{Feedback, FeedbackRecord, LogContents, LogEntry, label_set_id};

/// An error about the store's contents, naming it.
fn incompatible(store: &Store, reason: String) -> AssistantError {
    StoreError::Incompatible { store: store.name().into(), reason }.into()
}

/// The store's feedback as log entries (see the module docs).
pub async fn export(store: &Store) -> Result<Vec<LogEntry>, AssistantError> {
    let base = store.labels().await?;
    let interactions = store.interactions().await?;
    let events = store.events_after(0).await?;
    let judged: HashSet<i64> = events
        .iter()
        .filter_map(|e| match e.event {
            Event::Feedback { interaction_id, .. } => Some(interaction_id),
            _ => None,
        })
        .collect();
    let by_id: HashMap<i64, &InteractionRow> = interactions.iter().map(|i| (i.id, i)).collect();
    // Every label set the store's model has had: the base, then one more intent per `add_intent`.
    let mut labels = base.clone();
    labels.extend(events.iter().filter_map(|e| match &e.event {
        Event::AddIntent { name } => Some(name.clone()),
        _ => None,
    }));
    let record = |row: &InteractionRow, id: u64, unix_ms: i64, feedback, corrected_intent| {
        let q_values: Vec<f32> = serde_json::from_str(&row.q_values).unwrap_or_default();
        FeedbackRecord {
            id,
            unix_ms: u64::try_from(unix_ms).unwrap_or(0),
            utterance: row.text.clone(),
            features_hash: row.features_hash.clone(),
            label_set: label_set_id(&labels[..q_values.len().min(labels.len())]),
            action: row.intent.clone(),
            q_values,
            feedback,
            corrected_intent,
            model_version: u64::try_from(row.model_version).unwrap_or(0),
        }
    };
    // (time, interactions before events at the same time, their own order)
    enum Item<'a> {
        Unjudged(&'a InteractionRow),
        Event(&'a super::store::StoredEvent),
    }
    let mut items: Vec<(i64, u8, i64, Item)> = interactions
        .iter()
        .filter(|i| !judged.contains(&i.id))
        .map(|i| (i.unix_ms, 0, i.id, Item::Unjudged(i)))
        .chain(events.iter().map(|e| (e.unix_ms, 1, e.id, Item::Event(e))))
        .collect();
    items.sort_by_key(|(time, class, id, _)| (*time, *class, *id));
    let mut record_of_event: HashMap<i64, u64> = HashMap::new();
    let mut entries = Vec::with_capacity(items.len());
    for (seq, (time, _, _, item)) in items.into_iter().enumerate() {
        let seq = seq as u64;
        let unix_ms = u64::try_from(time).unwrap_or(0);
        let entry = match item {
            Item::Unjudged(row) => LogEntry::Interaction(record(row, seq, time, Feedback::Missing, None)),
            Item::Event(stored) => match &stored.event {
                Event::Feedback { interaction_id, feedback, corrected_intent, .. } => {
                    let row = by_id.get(interaction_id).ok_or_else(|| {
                        let reason =
                            format!("event {} is feedback on interaction {interaction_id}, not stored", stored.id);
                        incompatible(store, reason)
                    })?;
                    let feedback = Feedback::from_name(feedback).ok_or_else(|| {
                        incompatible(store, format!("event {} has unknown feedback `{feedback}`", stored.id))
                    })?;
                    record_of_event.insert(stored.id, seq);
                    LogEntry::Interaction(record(row, seq, time, feedback, corrected_intent.clone()))
                }
                Event::Undo { undoes } => match record_of_event.get(undoes) {
                    Some(&record) => LogEntry::Undo { id: seq, unix_ms, undoes: record },
                    None => {
                        let reason =
                            format!("event {} undoes event {undoes}, which is not feedback before it", stored.id);
                        return Err(incompatible(store, reason));
                    }
                },
                Event::AddIntent { name } => LogEntry::AddIntent { id: seq, unix_ms, name: name.clone() },
            },
        };
        entries.push(entry);
    }
    Ok(entries)
}

/// What an import added.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// Interactions added.
    pub interactions: usize,
    /// Feedback events added.
    pub feedback: usize,
    /// Undos added.
    pub undos: usize,
    /// Intents added.
    pub intents: usize,
}

/// Appends the log `contents` (read from `path`) to `store`, in one
/// transaction: all of it or nothing. The log must fit the store's model
/// (its label sets are checked first, errors naming the line).
pub async fn import(store: &Store, contents: &LogContents, path: &Path) -> Result<ImportSummary, AssistantError> {
    let base = store.labels().await?;
    contents.check_labels(path, &base)?;
    let (mut last_interaction, mut last_event) = store.last_ids().await?;
    let mut event_of_record: HashMap<u64, i64> = HashMap::new();
    let mut summary = ImportSummary::default();
    let mut tx = store.begin().await?;
    for (line, entry) in &contents.entries {
        let bad = |reason: String| AssistantError::LogLine { path: path.to_owned(), line: *line, reason };
        let (event, unix_ms) = match entry {
            LogEntry::Interaction(r) => {
                last_interaction += 1;
                let mut sorted = r.q_values.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                let row = InteractionRow {
                    id: last_interaction,
                    session: None,
                    text: r.utterance.clone(),
                    features_hash: r.features_hash.clone(),
                    model_version: i64::try_from(r.model_version).map_err(|_| bad("model_version too large".into()))?,
                    intent: r.action.clone(),
                    confidence: f64::from(
                        sorted.first().copied().unwrap_or(0.0) - sorted.get(1).copied().unwrap_or(0.0),
                    ),
                    q_values: serde_json::to_string(&r.q_values).unwrap_or_default(),
                    unix_ms: i64::try_from(r.unix_ms).unwrap_or(i64::MAX),
                };
                store.insert_interactions(&mut tx, std::slice::from_ref(&row)).await?;
                summary.interactions += 1;
                if r.feedback == Feedback::Missing {
                    continue;
                }
                event_of_record.insert(r.id, last_event + 1);
                summary.feedback += 1;
                let event = Event::Feedback {
                    interaction_id: row.id,
                    feedback: r.feedback.name().into(),
                    answered: r.action.clone(),
                    corrected_intent: r.corrected_intent.clone(),
                    text: r.utterance.clone(),
                };
                (event, r.unix_ms)
            }
            LogEntry::Undo { undoes, unix_ms, .. } => {
                let Some(&feedback) = event_of_record.get(undoes) else {
                    return Err(bad(format!("undoes entry {undoes}, which is no feedback before it in this log")));
                };
                summary.undos += 1;
                (Event::Undo { undoes: feedback }, *unix_ms)
            }
            LogEntry::AddIntent { name, unix_ms, .. } => {
                summary.intents += 1;
                (Event::AddIntent { name: name.clone() }, *unix_ms)
            }
        };
        last_event += 1;
        store.insert_event(&mut tx, last_event, &event, i64::try_from(unix_ms).unwrap_or(i64::MAX)).await?;
    }
    store.commit(tx).await?;
    Ok(summary)
}
