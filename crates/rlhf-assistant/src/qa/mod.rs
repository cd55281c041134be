//! Question answering: the assistant answers questions about its own
//! domains ("空调的除湿模式怎么开？", "how do I pair my phone?"), not only commands.
//!
//! - [`kb`]: the knowledge base: built-in entries (answers in Chinese and
//!   English, six to nine phrasings of each question per language, split
//!   into train and test by phrasing), a second built-in set (a car manual)
//!   to fine-tune to, and users' JSON-lines files.
//! - [`retriever`]: the cheap first stage, TF-IDF cosine over hashed
//!   n-grams, whose top k entries are the candidates an answer model
//!   chooses from (or says "I don't know").
//! - [`env`]: answer selection as a contextual bandit, [`AnswerEnv`].
//! - [`index`]: the knowledge base as the answer model sees it: candidates,
//!   features, and the network's decision among them.
//! - [`learn`]: supervised pretraining on pairs, Q-learning from feedback,
//!   hindsight relabeling of corrections.
//! - [`eval`]: top-1, MRR@10, recall@k, abstention, per language.
//! - [`baseline`]: BM25 (a maintained crate), the lexical baseline.
//! - [`study`]: what `cargo xtask qa` runs: pretraining, feedback,
//!   fine-tuning to the car manual against training from scratch.
//! - [`model`]: a trained answer model on disk (weights, knowledge base, settings).
//! - [`pair`]: the (question, answer) pair Q-network, one Q-value per pair
//!   and one for "I don't know", generic over the burn backend.

pub mod baseline;
pub mod env;
pub mod eval;
pub mod index;
pub mod kb;
pub mod learn;
pub mod model;
pub mod pair;
pub mod retriever;
pub mod study;

pub use env::{AnswerEnv, AnswerInfo, AnswerObs, AnswerRewards, CandidateSpace};
pub use eval::{ByLanguage, Heard, Outcome, QaScores};
pub use index::{AnswerIndex, Choice, Decision, Retrieved};
pub use kb::{KnowledgeBase, QaEntry, Question};
pub use learn::{Lesson, QaFeedback, QaLearnConfig, QaLearner, lessons};
pub use model::{DEFAULT_QA_MODEL_DIR, QaModel};
pub use pair::{PairConfig, PairQNetwork};
pub use retriever::Retriever;
