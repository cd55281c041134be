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
//! - [`pair`]: the (question, answer) pair Q-network, one Q-value per pair
//!   and one for "I don't know", generic over the burn backend.

pub mod env;
pub mod kb;
pub mod pair;
pub mod retriever;

pub use env::{AnswerEnv, AnswerInfo, AnswerObs, AnswerRewards, CandidateSpace};
pub use kb::{KnowledgeBase, QaEntry, Question};
pub use pair::{PairConfig, PairQNetwork};
pub use retriever::Retriever;
