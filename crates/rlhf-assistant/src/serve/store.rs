//! The feedback store: one schema in SQLite (the embedded default, WAL
//! mode) or PostgreSQL, through sqlx's `Any` driver, so the same queries
//! run on both.
//!
//! Tables (see [`MIGRATIONS`]):
//! - `meta`: the label set and base step of the model the store belongs to;
//! - `interactions`: every answered utterance (text, features hash, model
//!   version, answer, Q-values, time, session);
//! - `events`: feedback, undos and intents added, in the one order the
//!   learner applies them (`id` from 1);
//! - `model_versions`: saved checkpoints and the last event each includes;
//! - `answers`: every answered question (text, model version, the
//!   candidates' entry ids and Q-values, the entry answered or none);
//! - `answer_feedback`: what users said about answers, in the one order the
//!   answer learner applies it (`id` from 1; at most one per answer);
//! - `schema_version`: how many migrations have run.
//!
//! The model version after event `e` is `base_step + e`: it grows with every
//! event, continues across restarts, and names the same model in every
//! process sharing the store.
//!
//! Ids are assigned by the one writer of a store (the serving process), not
//! by the database; several servers sharing a store would need id blocks
//! (docs/ARCHITECTURE.md).

use std::path::{Path, PathBuf};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

/// A store error, naming the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or queried.
    #[error("feedback store {store}: {source}")]
    Database {
        /// The store's URL (a password removed).
        store: String,
        /// What sqlx reported.
        source: sqlx::Error,
    },
    /// The store's contents do not fit this program or this model.
    #[error("feedback store {store}: {reason}")]
    Incompatible {
        /// The store's URL.
        store: String,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// Whether the database refused a write (read-only, disk full, locked):
    /// a service answers 503 and goes on answering reads.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database { .. })
    }
}

/// The schema, one migration per entry; plain SQL that SQLite and
/// PostgreSQL both accept.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE interactions (
        id BIGINT PRIMARY KEY,
        session TEXT,
        text TEXT NOT NULL,
        features_hash TEXT NOT NULL,
        model_version BIGINT NOT NULL,
        intent TEXT NOT NULL,
        confidence DOUBLE PRECISION NOT NULL,
        q_values TEXT NOT NULL,
        unix_ms BIGINT NOT NULL);
     CREATE TABLE events (
        id BIGINT PRIMARY KEY,
        kind TEXT NOT NULL,
        interaction_id BIGINT,
        feedback TEXT,
        corrected_intent TEXT,
        intent_name TEXT,
        undoes BIGINT,
        undone BIGINT NOT NULL DEFAULT 0,
        unix_ms BIGINT NOT NULL);
     CREATE INDEX events_by_interaction ON events (interaction_id);
     CREATE TABLE model_versions (
        version BIGINT PRIMARY KEY,
        checkpoint TEXT NOT NULL,
        last_event BIGINT NOT NULL,
        unix_ms BIGINT NOT NULL)",
    "CREATE TABLE answers (
        id BIGINT PRIMARY KEY,
        session TEXT,
        text TEXT NOT NULL,
        model_version BIGINT NOT NULL,
        candidates TEXT NOT NULL,
        q_values TEXT NOT NULL,
        abstain_q DOUBLE PRECISION NOT NULL,
        answered TEXT,
        unix_ms BIGINT NOT NULL);
     CREATE TABLE answer_feedback (
        id BIGINT PRIMARY KEY,
        answer_id BIGINT NOT NULL UNIQUE,
        feedback TEXT NOT NULL,
        chosen TEXT,
        unix_ms BIGINT NOT NULL)",
];

/// The most interactions one `INSERT` statement carries (9 values each,
/// well under SQLite's and PostgreSQL's limits on bound values).
pub const INTERACTIONS_PER_STATEMENT: usize = 100;

/// One answered utterance, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionRow {
    /// Its id.
    pub id: i64,
    /// The client's session, if it named one.
    pub session: Option<String>,
    /// What was said.
    pub text: String,
    /// The features' fingerprint, hex.
    pub features_hash: String,
    /// The model that answered.
    pub model_version: i64,
    /// The intent chosen.
    pub intent: String,
    /// Best minus second-best Q-value.
    pub confidence: f64,
    /// Every label's Q-value, JSON.
    pub q_values: String,
    /// When.
    pub unix_ms: i64,
}

/// One event: feedback, an undo, or an intent added.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Feedback on an interaction.
    Feedback {
        /// The interaction.
        interaction_id: i64,
        /// `right`, `wrong` or `corrected`.
        feedback: String,
        /// The answer given.
        answered: String,
        /// For `corrected`: the intent named.
        corrected_intent: Option<String>,
        /// What was said.
        text: String,
    },
    /// Feedback taken back.
    Undo {
        /// The feedback event taken back.
        undoes: i64,
    },
    /// A new intent.
    AddIntent {
        /// Its name.
        name: String,
    },
}

/// One answered question, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRow {
    /// Its id.
    pub id: i64,
    /// The client's session, if it named one.
    pub session: Option<String>,
    /// The question as asked.
    pub text: String,
    /// The answer model that answered.
    pub model_version: i64,
    /// The candidates' entry ids, the retriever's best first.
    pub candidates: Vec<String>,
    /// Each candidate's Q-value, in candidate order.
    pub q_values: Vec<f32>,
    /// The Q-value of "I don't know".
    pub abstain_q: f64,
    /// The entry answered; `None`: "I don't know".
    pub answered: Option<String>,
    /// When.
    pub unix_ms: i64,
}

/// What a user said about an answer, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerFeedbackRow {
    /// Its place in the order the answer learner applies feedback (1, 2, ...).
    pub id: i64,
    /// The answer.
    pub answer_id: i64,
    /// `right`, `wrong`, `this_one` or `none_of_these`.
    pub feedback: String,
    /// For `this_one`: the entry the user chose.
    pub chosen: Option<String>,
    /// When.
    pub unix_ms: i64,
}

/// An event with its place in the order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its id (1, 2, ...).
    pub id: i64,
    /// When it was recorded.
    pub unix_ms: i64,
    /// What happened.
    pub event: Event,
}

/// A saved model version.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedVersion {
    /// Its version.
    pub version: i64,
    /// Its checkpoint, relative to the run folder.
    pub checkpoint: String,
    /// The last event it includes.
    pub last_event: i64,
}

/// A saved version of the answer model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedAnswerModel {
    /// How many answer feedback rows it has learned.
    pub version: i64,
    /// Its folder, relative to the run folder.
    pub dir: String,
    /// [`crate::qa::QaModel::fingerprint`] of the answer model it was learned from.
    pub base: String,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// The interaction.
    pub interaction: InteractionRow,
    /// The feedback in force on it, if any.
    pub feedback: Option<String>,
    /// The intent named by a correction.
    pub corrected_intent: Option<String>,
}

/// Counts over the whole store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreCounts {
    /// Interactions recorded.
    pub interactions: i64,
    /// Feedback in force: right, wrong, corrected.
    pub right: i64,
    /// See `right`.
    pub wrong: i64,
    /// See `right`.
    pub corrected: i64,
    /// Feedback taken back.
    pub undone: i64,
    /// Outcomes of the last 200 answers with feedback in force, oldest first (true: right).
    pub recent: Vec<bool>,
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    name: String,
}

/// A `sqlite://` URL for the file `path` (created if missing).
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The default store's file in a run folder.
pub fn default_store_path(run_dir: &Path) -> PathBuf {
    run_dir.join("feedback.db")
}

fn redact(url: &str) -> String {
    // postgres://user:password@host/db → postgres://user:***@host/db
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Opens the store at `url` (`sqlite://PATH?mode=rwc` or
    /// `postgres://...`), runs the migrations it lacks, and checks that it
    /// belongs to a model with `labels` at `base_step` (a new store is
    /// stamped with them). A store from a newer program, of another model,
    /// locked or not a database is an error naming it; nothing is changed then.
    pub async fn open(url: &str, labels: &[String], base_step: u64) -> Result<Self, StoreError> {
        install_default_drivers();
        let name = redact(url);
        let sqlite = url.starts_with("sqlite:");
        let db = |source| StoreError::Database { store: name.clone(), source };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: readers never wait for the writer; NORMAL: a commit survives a
                        // killed process (not a power cut) without an fsync per transaction.
                        for pragma in
                            ["PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL"]
                        {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(db)?;
        let store = Self { pool, name };
        store.migrate().await?;
        store.check_model(labels, base_step).await?;
        Ok(store)
    }

    /// The store's name (its URL without a password).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn db(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |source| StoreError::Database { store: self.name.clone(), source }
    }

    fn incompatible(&self, reason: String) -> StoreError {
        StoreError::Incompatible { store: self.name.clone(), reason }
    }

    /// The number of migrations applied.
    pub async fn schema_version(&self) -> Result<usize, StoreError> {
        let row =
            sqlx::query("SELECT version FROM schema_version").fetch_optional(&self.pool).await.map_err(self.db())?;
        Ok(row.map_or(0, |r| r.get::<i64, _>(0).max(0) as usize))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&self.pool)
            .await
            .map_err(self.db())?;
        let current = self.schema_version().await?;
        if current > MIGRATIONS.len() {
            return Err(self.incompatible(format!(
                "its schema is version {current}, newer than this program's {}; use a newer rlhf",
                MIGRATIONS.len()
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
            let mut tx = self.pool.begin().await.map_err(self.db())?;
            for statement in migration.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await.map_err(self.db())?;
            }
            sqlx::query("DELETE FROM schema_version").execute(&mut *tx).await.map_err(self.db())?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(index as i64 + 1)
                .execute(&mut *tx)
                .await
                .map_err(self.db())?;
            tx.commit().await.map_err(self.db())?;
        }
        Ok(())
    }

    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.db())?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    async fn check_model(&self, labels: &[String], base_step: u64) -> Result<(), StoreError> {
        let labels_json = serde_json::to_string(labels).unwrap_or_default();
        match self.meta("labels").await? {
            Some(stored) if stored != labels_json => Err(self.incompatible(format!(
                "it belongs to a model with other intents ({stored}); this model has {labels_json}. \
                 Serve that model, or give this one its own store with --db"
            ))),
            Some(_) => Ok(()),
            None => {
                let mut tx = self.pool.begin().await.map_err(self.db())?;
                for (key, value) in [("labels", labels_json), ("base_step", base_step.to_string())] {
                    sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
                        .bind(key)
                        .bind(value)
                        .execute(&mut *tx)
                        .await
                        .map_err(self.db())?;
                }
                tx.commit().await.map_err(self.db())
            }
        }
    }

    /// Records `saved` as the newest saved answer model.
    pub async fn save_answer_model(&self, saved: &SavedAnswerModel) -> Result<(), StoreError> {
        let value = serde_json::to_string(saved).unwrap_or_default();
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('answer_model', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(self.db())?;
        Ok(())
    }

    /// The newest saved answer model, if any.
    pub async fn saved_answer_model(&self) -> Result<Option<SavedAnswerModel>, StoreError> {
        let Some(value) = self.meta("answer_model").await? else { return Ok(None) };
        serde_json::from_str(&value)
            .map(Some)
            .map_err(|e| self.incompatible(format!("meta `answer_model` is `{value}`: {e}")))
    }

    /// The labels of the model the store belongs to (before intents added through it).
    pub async fn labels(&self) -> Result<Vec<String>, StoreError> {
        let value = self.meta("labels").await?.unwrap_or_default();
        serde_json::from_str(&value)
            .map_err(|e| self.incompatible(format!("meta `labels` is not a list of names: {e}")))
    }

    /// Every interaction, in id order.
    pub async fn interactions(&self) -> Result<Vec<InteractionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, session, text, features_hash, model_version, intent, confidence, q_values, unix_ms \
             FROM interactions ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.db())?;
        Ok(rows.iter().map(interaction_row).collect())
    }

    /// The checkpoint step the store's versions count from.
    pub async fn base_step(&self) -> Result<i64, StoreError> {
        let value = self.meta("base_step").await?.unwrap_or_default();
        value.parse().map_err(|_| self.incompatible(format!("meta `base_step` is `{value}`, not a number")))
    }

    /// The largest interaction and event ids so far (0 when none).
    pub async fn last_ids(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM interactions), (SELECT COALESCE(MAX(id), 0) FROM events)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(self.db())?;
        Ok((row.get::<i64, _>(0), row.get::<i64, _>(1)))
    }

    /// The largest answer and answer-feedback ids so far (0 when none).
    pub async fn last_answer_ids(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM answers), (SELECT COALESCE(MAX(id), 0) FROM answer_feedback)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(self.db())?;
        Ok((row.get::<i64, _>(0), row.get::<i64, _>(1)))
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        self.pool.begin().await.map_err(self.db())
    }

    /// Commits `tx`.
    pub async fn commit(&self, tx: sqlx::Transaction<'static, sqlx::Any>) -> Result<(), StoreError> {
        tx.commit().await.map_err(self.db())
    }

    /// Inserts `rows` in `tx`, up to [`INTERACTIONS_PER_STATEMENT`] per
    /// statement: under load a burst holds hundreds, and one statement per
    /// row would cost a round trip to the database each.
    pub async fn insert_interactions(
        &self,
        tx: &mut sqlx::AnyConnection,
        rows: &[InteractionRow],
    ) -> Result<(), StoreError> {
        const COLUMNS: usize = 9;
        for chunk in rows.chunks(INTERACTIONS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO interactions \
                 (id, session, text, features_hash, model_version, intent, confidence, q_values, unix_ms) VALUES ",
            );
            for r in 0..chunk.len() {
                let placeholders: Vec<String> = (1..=COLUMNS).map(|c| format!("${}", r * COLUMNS + c)).collect();
                sql.push_str(if r == 0 { "(" } else { ", (" });
                sql.push_str(&placeholders.join(", "));
                sql.push(')');
            }
            // Only placeholders are interpolated; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(row.id)
                    .bind(row.session.clone())
                    .bind(row.text.clone())
                    .bind(row.features_hash.clone())
                    .bind(row.model_version)
                    .bind(row.intent.clone())
                    .bind(row.confidence)
                    .bind(row.q_values.clone())
                    .bind(row.unix_ms);
            }
            query.execute(&mut *tx).await.map_err(self.db())?;
        }
        Ok(())
    }

    /// The interaction `id` as seen in `tx`: (text, intent), if recorded.
    pub async fn interaction(
        &self,
        tx: &mut sqlx::AnyConnection,
        id: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT text, intent FROM interactions WHERE id = $1")
            .bind(id)
            .fetch_optional(tx)
            .await
            .map_err(self.db())?;
        Ok(row.map(|r| (r.get::<String, _>(0), r.get::<String, _>(1))))
    }

    /// The feedback event in force on interaction `id`: (event id, feedback).
    pub async fn feedback_in_force(
        &self,
        tx: &mut sqlx::AnyConnection,
        interaction_id: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, feedback FROM events WHERE kind = 'feedback' AND interaction_id = $1 AND undone = 0",
        )
        .bind(interaction_id)
        .fetch_optional(tx)
        .await
        .map_err(self.db())?;
        Ok(row.map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1))))
    }

    /// Inserts event `id` in `tx` (an undo also marks the feedback it undoes).
    pub async fn insert_event(
        &self,
        tx: &mut sqlx::AnyConnection,
        id: i64,
        event: &Event,
        unix_ms: i64,
    ) -> Result<(), StoreError> {
        let (kind, interaction, feedback, corrected, name, undoes) = match event {
            Event::Feedback { interaction_id, feedback, corrected_intent, .. } => {
                ("feedback", Some(*interaction_id), Some(feedback.clone()), corrected_intent.clone(), None, None)
            }
            Event::Undo { undoes } => ("undo", None, None, None, None, Some(*undoes)),
            Event::AddIntent { name } => ("add_intent", None, None, None, Some(name.clone()), None),
        };
        sqlx::query(
            "INSERT INTO events (id, kind, interaction_id, feedback, corrected_intent, intent_name, undoes, unix_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(kind)
        .bind(interaction)
        .bind(feedback)
        .bind(corrected)
        .bind(name)
        .bind(undoes)
        .bind(unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.db())?;
        if let Some(undone) = undoes {
            sqlx::query("UPDATE events SET undone = 1 WHERE id = $1")
                .bind(undone)
                .execute(&mut *tx)
                .await
                .map_err(self.db())?;
        }
        Ok(())
    }

    /// Inserts `rows` in `tx`.
    pub async fn insert_answers(&self, tx: &mut sqlx::AnyConnection, rows: &[AnswerRow]) -> Result<(), StoreError> {
        for row in rows {
            sqlx::query(
                "INSERT INTO answers \
                 (id, session, text, model_version, candidates, q_values, abstain_q, answered, unix_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(row.id)
            .bind(row.session.clone())
            .bind(row.text.clone())
            .bind(row.model_version)
            .bind(serde_json::to_string(&row.candidates).unwrap_or_default())
            .bind(serde_json::to_string(&row.q_values).unwrap_or_default())
            .bind(row.abstain_q)
            .bind(row.answered.clone())
            .bind(row.unix_ms)
            .execute(&mut *tx)
            .await
            .map_err(self.db())?;
        }
        Ok(())
    }

    /// The answer `id` as seen in `tx`, if recorded.
    pub async fn answer(&self, tx: &mut sqlx::AnyConnection, id: i64) -> Result<Option<AnswerRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, session, text, model_version, candidates, q_values, abstain_q, answered, unix_ms \
             FROM answers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(tx)
        .await
        .map_err(self.db())?;
        row.map(|r| self.answer_row(&r)).transpose()
    }

    /// The feedback given on answer `answer_id` in `tx`: (its id, feedback).
    pub async fn answer_feedback_given(
        &self,
        tx: &mut sqlx::AnyConnection,
        answer_id: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT id, feedback FROM answer_feedback WHERE answer_id = $1")
            .bind(answer_id)
            .fetch_optional(tx)
            .await
            .map_err(self.db())?;
        Ok(row.map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1))))
    }

    /// Inserts `feedback` in `tx`.
    pub async fn insert_answer_feedback(
        &self,
        tx: &mut sqlx::AnyConnection,
        feedback: &AnswerFeedbackRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO answer_feedback (id, answer_id, feedback, chosen, unix_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(feedback.id)
        .bind(feedback.answer_id)
        .bind(feedback.feedback.clone())
        .bind(feedback.chosen.clone())
        .bind(feedback.unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(self.db())?;
        Ok(())
    }

    /// The answer feedback after `after`, in order, each with its answer.
    pub async fn answer_feedback_after(&self, after: i64) -> Result<Vec<(AnswerFeedbackRow, AnswerRow)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.session, a.text, a.model_version, a.candidates, a.q_values, a.abstain_q, a.answered, \
                    a.unix_ms, f.id, f.answer_id, f.feedback, f.chosen, f.unix_ms \
             FROM answer_feedback f JOIN answers a ON a.id = f.answer_id \
             WHERE f.id > $1 ORDER BY f.id",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db())?;
        rows.iter()
            .map(|r| {
                let feedback = AnswerFeedbackRow {
                    id: r.get(9),
                    answer_id: r.get(10),
                    feedback: r.get(11),
                    chosen: r.get(12),
                    unix_ms: r.get(13),
                };
                Ok((feedback, self.answer_row(r)?))
            })
            .collect()
    }

    /// An answer from a row whose first nine columns are the table's, in order.
    fn answer_row(&self, r: &sqlx::any::AnyRow) -> Result<AnswerRow, StoreError> {
        let id: i64 = r.get(0);
        let bad = |what: &str, e: serde_json::Error| self.incompatible(format!("answer {id}'s {what}: {e}"));
        Ok(AnswerRow {
            id,
            session: r.get(1),
            text: r.get(2),
            model_version: r.get(3),
            candidates: serde_json::from_str(&r.get::<String, _>(4)).map_err(|e| bad("candidates", e))?,
            q_values: serde_json::from_str(&r.get::<String, _>(5)).map_err(|e| bad("Q-values", e))?,
            abstain_q: r.get(6),
            answered: r.get(7),
            unix_ms: r.get(8),
        })
    }

    /// Events after `after`, in order, feedback with its interaction's text and answer.
    pub async fn events_after(&self, after: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.kind, e.interaction_id, e.feedback, e.corrected_intent, e.intent_name, e.undoes, \
                    i.text, i.intent, e.unix_ms \
             FROM events e LEFT JOIN interactions i ON i.id = e.interaction_id \
             WHERE e.id > $1 ORDER BY e.id",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db())?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let kind: String = r.get(1);
                let event = match kind.as_str() {
                    "feedback" => Event::Feedback {
                        interaction_id: r.get(2),
                        feedback: r.get(3),
                        corrected_intent: r.get(4),
                        text: r.try_get(7).unwrap_or_default(),
                        answered: r.try_get(8).unwrap_or_default(),
                    },
                    "undo" => Event::Undo { undoes: r.get(6) },
                    "add_intent" => Event::AddIntent { name: r.get(5) },
                    other => return Err(self.incompatible(format!("event {id} has an unknown kind `{other}`"))),
                };
                Ok(StoredEvent { id, unix_ms: r.get(9), event })
            })
            .collect()
    }

    /// Records a saved version.
    pub async fn save_version(&self, saved: &SavedVersion, unix_ms: i64) -> Result<(), StoreError> {
        // Saving the same version twice (nothing learned in between) records it once.
        sqlx::query(
            "INSERT INTO model_versions (version, checkpoint, last_event, unix_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(saved.version)
        .bind(saved.checkpoint.clone())
        .bind(saved.last_event)
        .bind(unix_ms)
        .execute(&self.pool)
        .await
        .map_err(self.db())?;
        Ok(())
    }

    /// The newest saved version, if any.
    pub async fn latest_version(&self) -> Result<Option<SavedVersion>, StoreError> {
        let row =
            sqlx::query("SELECT version, checkpoint, last_event FROM model_versions ORDER BY version DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(self.db())?;
        Ok(row.map(|r| SavedVersion { version: r.get(0), checkpoint: r.get(1), last_event: r.get(2) }))
    }

    /// The newest `limit` interactions with their feedback in force, newest first.
    pub async fn history(&self, limit: i64) -> Result<Vec<HistoryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.id, i.session, i.text, i.features_hash, i.model_version, i.intent, i.confidence, i.q_values, \
                    i.unix_ms, e.feedback, e.corrected_intent \
             FROM interactions i LEFT JOIN events e \
               ON e.interaction_id = i.id AND e.kind = 'feedback' AND e.undone = 0 \
             ORDER BY i.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db())?;
        Ok(rows
            .iter()
            .map(|r| HistoryRow { interaction: interaction_row(r), feedback: r.get(9), corrected_intent: r.get(10) })
            .collect())
    }

    /// Counts for `/v1/stats`.
    pub async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let mut counts = StoreCounts::default();
        let row = sqlx::query("SELECT COUNT(*) FROM interactions").fetch_one(&self.pool).await.map_err(self.db())?;
        counts.interactions = row.get(0);
        let rows = sqlx::query(
            "SELECT feedback, undone, COUNT(*) FROM events WHERE kind = 'feedback' GROUP BY feedback, undone",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.db())?;
        for r in rows {
            let (feedback, undone, n): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            match (feedback.as_str(), undone) {
                (_, 1) => counts.undone += n,
                ("right", _) => counts.right += n,
                ("wrong", _) => counts.wrong += n,
                _ => counts.corrected += n,
            }
        }
        let rows = sqlx::query(
            "SELECT feedback FROM events WHERE kind = 'feedback' AND undone = 0 ORDER BY id DESC LIMIT 200",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.db())?;
        counts.recent = rows.iter().rev().map(|r| r.get::<String, _>(0) == "right").collect();
        Ok(counts)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// An interaction from a row whose first nine columns are the table's, in order.
fn interaction_row(r: &sqlx::any::AnyRow) -> InteractionRow {
    InteractionRow {
        id: r.get(0),
        session: r.get(1),
        text: r.get(2),
        features_hash: r.get(3),
        model_version: r.get(4),
        intent: r.get(5),
        confidence: r.get(6),
        q_values: r.get(7),
        unix_ms: r.get(8),
    }
}

/// Milliseconds since the Unix epoch, as the store keeps them.
pub fn now_ms() -> i64 {
    i64::try_from(crate::feedback::now_unix_ms()).unwrap_or(i64::MAX)
}

/// Where a saved version's checkpoint goes inside the run folder.
pub fn version_dir(version: i64) -> String {
    format!("versions/{version}")
}
