//! Human feedback on the assistant's answers: the append-only log, and the
//! lessons (action, reward) each answer teaches.
//!
//! The log is JSON lines, one [`LogEntry`] per line. Appends are written,
//! flushed and `fsync`ed one at a time, so a crash loses at most the entry
//! being written; such an entry is a *torn* last line (no newline, or not
//! JSON), which [`read_log`] reports instead of failing, and
//! [`FeedbackLog::open`] cuts off before appending. A malformed line
//! anywhere else is an error naming the file and the line: nothing is
//! skipped silently.
//!
//! Hindsight relabeling: an answer corrected to intent `c` teaches both that
//! the chosen action was wrong (reward −1) and that `c` would have been
//! right (+1), as if the user had asked for `c` all along: the reward of the
//! other action is recomputed from what the user turned out to want.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rlhf_model::hash::fnv1a_hex;
use serde::{Deserialize, Serialize};

use crate::AssistantError;

/// What the user said about one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feedback {
    /// The chosen intent was right (`y`, or an empty line).
    Right,
    /// The chosen intent was wrong (`n`), and the user did not say which is right.
    Wrong,
    /// The user named the right intent (`= label`), different from the chosen one.
    Corrected,
    /// No answer (a simulated user who did not reply): nothing to learn.
    Missing,
}

/// One answered utterance, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// Sequence number in the log, from 0.
    pub id: u64,
    /// When, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// What the user said (as typed or recognised).
    pub utterance: String,
    /// [`SparseFeatures::fingerprint`](rlhf_model::text::SparseFeatures::fingerprint)
    /// of the utterance, hex: equal for utterances the model cannot tell apart.
    pub features_hash: String,
    /// [`label_set_id`] of the model's labels.
    pub label_set: String,
    /// The intent the assistant chose.
    pub action: String,
    /// The model's Q-value of every label, in label order.
    pub q_values: Vec<f32>,
    /// The user's answer.
    pub feedback: Feedback,
    /// The intent the user named, for [`Feedback::Corrected`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_intent: Option<String>,
    /// The model that answered: its checkpoint's step plus the online updates since.
    pub model_version: u64,
}

/// One line of the feedback log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogEntry {
    /// An answered utterance.
    Interaction(FeedbackRecord),
    /// `:undo`: the interaction `undoes` is to be forgotten.
    Undo {
        /// Sequence number in the log.
        id: u64,
        /// When, in milliseconds since the Unix epoch.
        unix_ms: u64,
        /// The id of the interaction taken back.
        undoes: u64,
    },
    /// A new intent (from the server's `POST /v1/intents`): the model gains
    /// an output, and the entries after this one use the label set with it.
    AddIntent {
        /// Sequence number in the log.
        id: u64,
        /// When, in milliseconds since the Unix epoch.
        unix_ms: u64,
        /// The intent's name.
        name: String,
    },
}

impl Feedback {
    /// Its name in logs and stores: `right`, `wrong`, `corrected`, `missing`.
    pub fn name(self) -> &'static str {
        match self {
            Feedback::Right => "right",
            Feedback::Wrong => "wrong",
            Feedback::Corrected => "corrected",
            Feedback::Missing => "missing",
        }
    }

    /// The feedback `name` stands for, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Feedback::Right, Feedback::Wrong, Feedback::Corrected, Feedback::Missing]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

impl LogEntry {
    /// The entry's sequence number.
    pub fn id(&self) -> u64 {
        match self {
            LogEntry::Interaction(record) => record.id,
            LogEntry::Undo { id, .. } | LogEntry::AddIntent { id, .. } => *id,
        }
    }
}

/// A stable identifier of a label set (order matters: it is the output order).
pub fn label_set_id(labels: &[String]) -> String {
    fnv1a_hex(labels.join("\n").as_bytes())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A line that a crash cut short: the last line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornLine {
    /// Its line number, counting from 1.
    pub line: usize,
    /// Why it cannot be read.
    pub reason: String,
    /// Byte offset where it starts (the log's good part ends there).
    pub offset: u64,
}

/// What [`read_log`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogContents {
    /// Every complete entry with its line number.
    pub entries: Vec<(usize, LogEntry)>,
    /// The torn last line, if any.
    pub torn: Option<TornLine>,
}

impl LogContents {
    /// The id the next entry gets.
    pub fn next_id(&self) -> u64 {
        self.entries.last().map_or(0, |(_, e)| e.id() + 1)
    }

    /// The interactions still in force: every undone one removed, in log order,
    /// with their line numbers.
    pub fn interactions(&self) -> Vec<(usize, &FeedbackRecord)> {
        let undone: std::collections::HashSet<u64> = self
            .entries
            .iter()
            .filter_map(|(_, e)| match e {
                LogEntry::Undo { undoes, .. } => Some(*undoes),
                LogEntry::Interaction(_) | LogEntry::AddIntent { .. } => None,
            })
            .collect();
        self.entries
            .iter()
            .filter_map(|(line, e)| match e {
                LogEntry::Interaction(r) if !undone.contains(&r.id) => Some((*line, r)),
                _ => None,
            })
            .collect()
    }

    /// The intents the log adds, in order.
    pub fn added_intents(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|(_, e)| match e {
                LogEntry::AddIntent { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Checks that every interaction was logged by a model with `labels`
    /// (and some of the intents the log added before it: a server may answer
    /// with the model before an intent reached it), and names only those
    /// labels; the error names the first line that was not.
    pub fn check_labels(&self, path: &Path, labels: &[String]) -> Result<(), AssistantError> {
        let mut in_force = labels.to_vec();
        let mut label_sets = vec![label_set_id(&in_force)];
        for (line, entry) in &self.entries {
            let bad = |reason: String| Err(AssistantError::LogLine { path: path.to_owned(), line: *line, reason });
            let record = match entry {
                LogEntry::Interaction(record) => record,
                LogEntry::AddIntent { name, .. } if in_force.contains(name) => {
                    return bad(format!("intent `{name}` is added twice"));
                }
                LogEntry::AddIntent { name, .. } => {
                    in_force.push(name.clone());
                    label_sets.push(label_set_id(&in_force));
                    continue;
                }
                LogEntry::Undo { .. } => continue,
            };
            if !label_sets.contains(&record.label_set) {
                return bad(format!(
                    "logged by a model with another label set ({}, this model's is {}: {})",
                    record.label_set,
                    label_sets[label_sets.len() - 1],
                    in_force.join(", ")
                ));
            }
            for name in std::iter::once(&record.action).chain(&record.corrected_intent) {
                if !in_force.contains(name) {
                    return bad(format!("intent `{name}` is not one of the model's labels"));
                }
            }
            if record.feedback == Feedback::Corrected && record.corrected_intent.is_none() {
                return bad("a correction without `corrected_intent`".into());
            }
        }
        Ok(())
    }
}

/// Reads a feedback log. A missing file is an empty log. The last line may be
/// torn (reported in [`LogContents::torn`]); any other bad line is an error
/// naming the file and the line.
pub fn read_log(path: &Path) -> Result<LogContents, AssistantError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogContents::default()),
        Err(source) => return Err(AssistantError::Io { path: path.to_owned(), source }),
    };
    let mut contents = LogContents::default();
    let mut offset = 0usize;
    let mut line = 0;
    while offset < bytes.len() {
        line += 1;
        let end = bytes[offset..].iter().position(|&b| b == b'\n').map(|i| offset + i);
        let text = &bytes[offset..end.unwrap_or(bytes.len())];
        let next = end.map_or(bytes.len(), |e| e + 1);
        if end.is_some() && text.iter().all(u8::is_ascii_whitespace) {
            // A blank line carries nothing.
            offset = next;
            continue;
        }
        let parsed = std::str::from_utf8(text)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<LogEntry>(t).map_err(|e| e.to_string()));
        match (parsed, end) {
            (Ok(entry), Some(_)) => contents.entries.push((line, entry)),
            // No newline: the write was cut short, even if the JSON happens to parse.
            (Ok(_), None) => {
                let reason = "no end of line (the write was cut short)".to_owned();
                contents.torn = Some(TornLine { line, reason, offset: offset as u64 });
            }
            (Err(reason), None) => contents.torn = Some(TornLine { line, reason, offset: offset as u64 }),
            (Err(reason), Some(_)) => return Err(AssistantError::LogLine { path: path.to_owned(), line, reason }),
        }
        offset = next;
    }
    Ok(contents)
}

/// An open feedback log, appended to one durable line at a time.
#[derive(Debug)]
pub struct FeedbackLog {
    path: PathBuf,
    file: File,
    next_id: u64,
}

impl FeedbackLog {
    /// Opens (or creates) the log at `path` for appending, after reading it.
    /// A torn last line is cut off (the caller sees it in the returned
    /// contents, to warn); any other bad line is an error.
    pub fn open(path: &Path) -> Result<(Self, LogContents), AssistantError> {
        let io = |source| AssistantError::Io { path: path.to_owned(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let contents = read_log(path)?;
        let mut file = OpenOptions::new().create(true).read(true).write(true).truncate(false).open(path).map_err(io)?;
        if let Some(torn) = &contents.torn {
            file.set_len(torn.offset).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let next_id = contents.next_id();
        Ok((Self { path: path.to_owned(), file, next_id }, contents))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id the next entry gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Appends `entry` (its id must be [`next_id`](Self::next_id)) as one
    /// line, and returns once it is on disk.
    pub fn append(&mut self, entry: &LogEntry) -> Result<(), AssistantError> {
        if entry.id() != self.next_id {
            let reason = format!("entry id {} where {} comes next", entry.id(), self.next_id);
            return Err(AssistantError::InvalidConfig { field: "id", reason });
        }
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| AssistantError::InvalidConfig { field: "feedback", reason: e.to_string() })?;
        line.push(b'\n');
        let io = |source| AssistantError::Io { path: self.path.clone(), source };
        // One write call per line, then to the disk: a crash leaves whole lines and at most one torn one.
        self.file.write_all(&line).map_err(io)?;
        self.file.flush().map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.next_id += 1;
        Ok(())
    }
}

/// The (action index, reward) pairs one answer teaches. With `relabel`, a
/// correction also teaches +1 for the named intent (hindsight relabeling);
/// without, it is only a wrong answer.
pub fn lessons(labels: &[String], record: &FeedbackRecord, relabel: bool) -> Result<Vec<(usize, f32)>, AssistantError> {
    let index = |name: &str| {
        labels.iter().position(|l| l == name).ok_or_else(|| AssistantError::InvalidConfig {
            field: "intent",
            reason: format!("`{name}` is not one of the model's labels"),
        })
    };
    let chosen = index(&record.action)?;
    Ok(match (record.feedback, &record.corrected_intent) {
        (Feedback::Right, _) => vec![(chosen, 1.0)],
        (Feedback::Wrong, _) => vec![(chosen, -1.0)],
        (Feedback::Corrected, Some(name)) => {
            let corrected = index(name)?;
            match (corrected == chosen, relabel) {
                (true, _) => vec![(chosen, 1.0)],
                (false, true) => vec![(chosen, -1.0), (corrected, 1.0)],
                (false, false) => vec![(chosen, -1.0)],
            }
        }
        (Feedback::Corrected, None) | (Feedback::Missing, _) => Vec::new(),
    })
}

/// The lessons of feedback given by name (`right`, `wrong`, `corrected`)
/// on the answer `answered`, with hindsight relabeling: [`lessons`] of the
/// record it stands for.
pub fn named_lessons(
    labels: &[String],
    answered: &str,
    feedback: Feedback,
    corrected_intent: Option<String>,
) -> Result<Vec<(usize, f32)>, AssistantError> {
    let record = FeedbackRecord {
        id: 0,
        unix_ms: 0,
        utterance: String::new(),
        features_hash: String::new(),
        label_set: String::new(),
        action: answered.to_owned(),
        q_values: Vec::new(),
        feedback,
        corrected_intent,
        model_version: 0,
    };
    lessons(labels, &record, true)
}

/// What all the feedback on one utterance says, after resolving conflicts.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedUtterance {
    /// The utterance as last logged.
    pub utterance: String,
    /// The intent known to be right, if any.
    pub right: Option<usize>,
    /// Intents known to be wrong (never `right`), ascending.
    pub wrong: Vec<usize>,
}

impl ResolvedUtterance {
    /// Its lessons: +1 for the right intent, −1 for each wrong one.
    pub fn lessons(&self) -> Vec<(usize, f32)> {
        self.right.map(|r| (r, 1.0)).into_iter().chain(self.wrong.iter().map(|&w| (w, -1.0))).collect()
    }
}

/// Merges the feedback on each utterance (records with equal `key`, e.g. the
/// features' fingerprint), **latest wins**: records are applied in log
/// order, and each replaces what it contradicts. "Right" or a correction
/// to `c` makes `c` the right intent (and no longer wrong); "wrong" on `a`
/// marks `a` wrong and drops it as the right intent if it was. Evidence
/// that does not conflict is kept: "wrong: light_on" then "right:
/// light_off" teaches both. Utterances come out in order of first
/// appearance; those left with nothing known are dropped.
pub fn resolve(
    labels: &[String],
    records: &[&FeedbackRecord],
    relabel: bool,
    mut key: impl FnMut(&FeedbackRecord) -> u64,
) -> Result<Vec<ResolvedUtterance>, AssistantError> {
    let mut order: Vec<u64> = Vec::new();
    let mut merged: HashMap<u64, ResolvedUtterance> = HashMap::new();
    for record in records {
        let k = key(record);
        let entry = merged.entry(k).or_insert_with(|| {
            order.push(k);
            ResolvedUtterance { utterance: String::new(), right: None, wrong: Vec::new() }
        });
        entry.utterance.clone_from(&record.utterance);
        for (action, reward) in lessons(labels, record, relabel)? {
            if reward > 0.0 {
                entry.right = Some(action);
                entry.wrong.retain(|&w| w != action);
            } else {
                if entry.right == Some(action) {
                    entry.right = None;
                }
                if let Err(at) = entry.wrong.binary_search(&action) {
                    entry.wrong.insert(at, action);
                }
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|k| merged.remove(&k))
        .filter(|u| u.right.is_some() || !u.wrong.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {

    #[test]
    fn feedback_names_are_the_ones_serde_writes_and_read_back() {
        for feedback in [Feedback::Right, Feedback::Wrong, Feedback::Corrected, Feedback::Missing] {
            assert_eq!(serde_json::to_value(feedback).unwrap(), feedback.name());
            assert_eq!(Feedback::from_name(feedback.name()), Some(feedback));
        }
        assert_eq!(Feedback::from_name("maybe"), None);
    }

    use tempfile::TempDir;

    use super::*;

    fn labels() -> Vec<String> {
        ["light_on", "light_off", "volume_up"].iter().map(|s| (*s).to_owned()).collect()
    }

    fn record(id: u64, utterance: &str, action: &str, feedback: Feedback, corrected: Option<&str>) -> FeedbackRecord {
        FeedbackRecord {
            id,
            unix_ms: 1_700_000_000_000 + id,
            utterance: utterance.into(),
            features_hash: format!("{:016x}", id),
            label_set: label_set_id(&labels()),
            action: action.into(),
            q_values: vec![0.5, -0.5, -1.0],
            feedback,
            corrected_intent: corrected.map(str::to_owned),
            model_version: 7,
        }
    }

    /// A log path whose folder does not exist yet (opening the log creates it), inside a scratch directory that
    /// lasts as long as the returned `TempDir`.
    fn temp_log(name: &str) -> (TempDir, PathBuf) {
        let tmp = TempDir::with_prefix(format!("rlhf-feedback-{name}-")).unwrap();
        let path = tmp.path().join("log").join("feedback.jsonl");
        (tmp, path)
    }

    #[test]
    fn a_correction_is_relabeled_into_a_right_answer_for_the_named_intent() {
        let labels = labels();
        let corrected = record(0, "开灯", "light_off", Feedback::Corrected, Some("light_on"));
        assert_eq!(lessons(&labels, &corrected, true).unwrap(), vec![(1, -1.0), (0, 1.0)]);
        assert_eq!(lessons(&labels, &corrected, false).unwrap(), vec![(1, -1.0)]);
        let same = record(1, "开灯", "light_on", Feedback::Corrected, Some("light_on"));
        assert_eq!(lessons(&labels, &same, true).unwrap(), vec![(0, 1.0)]);
        assert_eq!(
            lessons(&labels, &record(2, "x", "volume_up", Feedback::Right, None), true).unwrap(),
            vec![(2, 1.0)]
        );
        assert_eq!(
            lessons(&labels, &record(3, "x", "volume_up", Feedback::Wrong, None), true).unwrap(),
            vec![(2, -1.0)]
        );
        assert!(lessons(&labels, &record(4, "x", "volume_up", Feedback::Missing, None), true).unwrap().is_empty());
        let unknown = record(5, "x", "fly", Feedback::Right, None);
        assert!(lessons(&labels, &unknown, true).unwrap_err().to_string().contains("`fly`"));
    }

    #[test]
    fn latest_feedback_wins_and_consistent_feedback_is_kept() {
        let labels = labels();
        let records = [
            record(0, "turn it up", "light_on", Feedback::Wrong, None),
            record(1, "lights", "light_on", Feedback::Right, None),
            record(2, "turn it up", "volume_up", Feedback::Right, None),
            // The same utterance again, now said to be wrong: the latest wins.
            record(3, "lights", "light_on", Feedback::Wrong, None),
            record(4, "lights", "light_on", Feedback::Corrected, Some("light_off")),
            record(5, "silence", "volume_up", Feedback::Missing, None),
        ];
        let refs: Vec<&FeedbackRecord> = records.iter().collect();
        let key = |r: &FeedbackRecord| rlhf_model::hash::fnv1a(0, r.utterance.as_bytes());
        let resolved = resolve(&labels, &refs, true, key).unwrap();
        assert_eq!(resolved.len(), 2, "the utterance with only a missing answer teaches nothing");
        assert_eq!(resolved[0], ResolvedUtterance { utterance: "turn it up".into(), right: Some(2), wrong: vec![0] });
        assert_eq!(resolved[1], ResolvedUtterance { utterance: "lights".into(), right: Some(1), wrong: vec![0] });
        assert_eq!(resolved[1].lessons(), vec![(1, 1.0), (0, -1.0)]);
        // "right" after "wrong" on the same intent takes it back.
        let flip =
            [record(0, "a", "light_on", Feedback::Wrong, None), record(1, "a", "light_on", Feedback::Right, None)];
        let refs: Vec<&FeedbackRecord> = flip.iter().collect();
        assert_eq!(resolve(&labels, &refs, true, key).unwrap()[0].wrong, Vec::<usize>::new());
    }

    #[test]
    fn the_log_round_trips_and_undo_takes_an_interaction_back() {
        let (_tmp, path) = temp_log("round-trip");
        let (mut log, contents) = FeedbackLog::open(&path).unwrap();
        assert_eq!((contents.entries.len(), log.next_id()), (0, 0));
        let first = record(0, "打开灯", "light_on", Feedback::Right, None);
        log.append(&LogEntry::Interaction(first.clone())).unwrap();
        let second = record(1, "关灯", "light_on", Feedback::Corrected, Some("light_off"));
        log.append(&LogEntry::Interaction(second.clone())).unwrap();
        log.append(&LogEntry::Undo { id: 2, unix_ms: 5, undoes: 0 }).unwrap();
        let err = log.append(&LogEntry::Undo { id: 9, unix_ms: 5, undoes: 1 }).unwrap_err();
        assert!(err.to_string().contains("id 9"), "{err}");
        drop(log);
        let contents = read_log(&path).unwrap();
        assert_eq!(contents.torn, None);
        assert_eq!(contents.entries.len(), 3);
        assert_eq!(contents.entries[1], (2, LogEntry::Interaction(second.clone())));
        assert_eq!(contents.interactions(), vec![(2, &second)]);
        assert_eq!(contents.next_id(), 3);
        contents.check_labels(&path, &labels()).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_reported_and_cut_before_appending() {
        let (_tmp, path) = temp_log("torn");
        let (mut log, _) = FeedbackLog::open(&path).unwrap();
        log.append(&LogEntry::Interaction(record(0, "打开灯", "light_on", Feedback::Right, None))).unwrap();
        drop(log);
        let whole = std::fs::read(&path).unwrap();
        // A crash in the middle of the second line.
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..whole.len() / 2]);
        std::fs::write(&path, &torn).unwrap();
        let contents = read_log(&path).unwrap();
        assert_eq!(contents.entries.len(), 1);
        let line = contents.torn.as_ref().unwrap();
        assert_eq!((line.line, line.offset), (2, whole.len() as u64));
        // Reopening cuts the torn line and appends after the good part.
        let (mut log, seen) = FeedbackLog::open(&path).unwrap();
        assert!(seen.torn.is_some());
        log.append(&LogEntry::Interaction(record(1, "关灯", "light_off", Feedback::Right, None))).unwrap();
        let contents = read_log(&path).unwrap();
        assert_eq!((contents.entries.len(), contents.torn), (2, None));
        // Even a complete JSON object without its newline counts as torn.
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        assert_eq!(read_log(&path).unwrap().torn.unwrap().line, 1);
    }

    #[test]
    fn a_bad_line_before_the_end_and_another_label_set_are_errors_naming_the_line() {
        let (_tmp, path) = temp_log("bad");
        let (mut log, _) = FeedbackLog::open(&path).unwrap();
        log.append(&LogEntry::Interaction(record(0, "a", "light_on", Feedback::Right, None))).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{not json}\n");
        bytes.extend_from_slice(&std::fs::read(&path).unwrap());
        std::fs::write(&path, &bytes).unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(err.contains("feedback.jsonl:2"), "{err}");
        assert!(FeedbackLog::open(&path).is_err(), "appending after a damaged middle would hide it");

        let mut other = record(0, "a", "light_on", Feedback::Right, None);
        other.label_set = label_set_id(&["light_on".to_owned()]);
        std::fs::write(&path, format!("{}\n", serde_json::to_string(&LogEntry::Interaction(other)).unwrap())).unwrap();
        let err = read_log(&path).unwrap().check_labels(&path, &labels()).unwrap_err().to_string();
        assert!(err.contains("feedback.jsonl:1") && err.contains("another label set"), "{err}");
    }
}
