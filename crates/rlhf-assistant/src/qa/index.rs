//! The knowledge base as the answer model sees it ([`AnswerIndex`]): the
//! retriever's candidates for a question, the pair network's features of the
//! question and of every entry, and the model's decision among them.
//!
//! An entry's features (its "document") are those of its answers and its
//! training phrasings together: the pair network compares a question with
//! everything known about an entry, and an entry added later (a user's file,
//! a second knowledge base) is scored as soon as it is indexed.

use std::collections::HashMap;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rlhf_model::text::{FeaturizerConfig, HashedNgrams, SparseFeatures};

use super::kb::{KnowledgeBase, PhrasingId, Question};
use super::pair::{HostPair, HostScratch, PairQNetwork};
use super::retriever::{Retriever, summed_documents};
use crate::AssistantError;

/// What the pair network scores: answering with an entry, or "I don't know".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Choice {
    /// Answer with entry `entry`, whose retrieval cosine with the question is `retrieval`.
    Answer {
        /// The entry's index.
        entry: usize,
        /// The retriever's cosine between the question and the entry.
        retrieval: f32,
    },
    /// Say "I don't know"; `best_retrieval` is the best candidate's cosine.
    Abstain {
        /// The best retrieval cosine among the candidates.
        best_retrieval: f32,
    },
}

impl Choice {
    /// The entry answered, `None` for "I don't know".
    pub fn entry(&self) -> Option<usize> {
        match *self {
            Choice::Answer { entry, .. } => Some(entry),
            Choice::Abstain { .. } => None,
        }
    }
}

/// A question as heard, ready to score: its pair features, every entry's
/// retrieval cosine and the candidates (the retriever's top `k`, best first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Retrieved {
    /// The indexed phrasing this question is, when training leaves it out of
    /// the index (see [`AnswerIndex::retrieve_into`]).
    pub left_out: Option<PhrasingId>,
    /// The pair network's features of the question.
    pub features: SparseFeatures,
    /// Every entry's retrieval cosine, in entry order.
    pub retrieval: Vec<f32>,
    /// The candidates, the retriever's best first.
    pub candidates: Vec<usize>,
}

impl Retrieved {
    /// Answering with `entry` (a candidate or not).
    pub fn answer(&self, entry: usize) -> Choice {
        Choice::Answer { entry, retrieval: self.retrieval[entry] }
    }

    /// Saying "I don't know".
    pub fn abstain(&self) -> Choice {
        Choice::Abstain { best_retrieval: self.best_retrieval() }
    }

    /// The best candidate's retrieval cosine (0 without candidates).
    pub fn best_retrieval(&self) -> f32 {
        self.candidates.first().map_or(0.0, |&c| self.retrieval[c])
    }
}

/// The model's view of one question: each candidate's Q-value and "I don't know"'s.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The question, retrieved.
    pub retrieved: Retrieved,
    /// Q of answering with each candidate, in candidate order.
    pub q: Vec<f32>,
    /// Q of "I don't know".
    pub abstain_q: f32,
}

impl Decision {
    /// The candidates ordered by Q-value, best first (ties by retrieval order).
    pub fn ranking(&self) -> Vec<usize> {
        self.ranked().into_iter().map(|(entry, _)| entry).collect()
    }

    /// [`Decision::ranking`] with each candidate's Q-value: `(entry, Q)`, best first.
    pub fn ranked(&self) -> Vec<(usize, f32)> {
        let mut order: Vec<usize> = (0..self.q.len()).collect();
        order.sort_by(|&a, &b| self.q[b].total_cmp(&self.q[a]).then(a.cmp(&b)));
        order.into_iter().map(|i| (self.retrieved.candidates[i], self.q[i])).collect()
    }

    /// The greedy action: the best candidate's entry, or `None` ("I don't
    /// know") when no candidate's Q-value beats abstaining's.
    pub fn choice(&self) -> Option<usize> {
        let best = rlhf_model::argmax(&self.q);
        (self.q.get(best).is_some_and(|&q| q >= self.abstain_q)).then(|| self.retrieved.candidates[best])
    }
}

/// A knowledge base indexed for answering (see the module docs).
#[derive(Debug, Clone)]
pub struct AnswerIndex {
    kb: Arc<KnowledgeBase>,
    retriever: Arc<Retriever>,
    retrieval_featurizer: HashedNgrams,
    featurizer: HashedNgrams,
    /// Row-major: entry × the pair features' length, each row the sum of
    /// its texts' features (normalised when read).
    documents: Vec<f32>,
    /// Each row's L2 norm.
    norms: Vec<f32>,
    /// The pair features of each indexed phrasing (what leaving it out subtracts).
    phrasings: HashMap<PhrasingId, SparseFeatures>,
    k: usize,
}

impl AnswerIndex {
    /// Indexes `kb` with `k` candidates per question; the pair network reads
    /// features of `features`' settings.
    pub fn new(kb: KnowledgeBase, features: FeaturizerConfig, k: usize) -> Result<Self, AssistantError> {
        if k == 0 {
            return Err(AssistantError::InvalidConfig { field: "k", reason: "needs at least one candidate".into() });
        }
        let retriever = Retriever::new(&kb, Retriever::default_config())?;
        let featurizer = HashedNgrams::new(features)?;
        let dim = features.dim;
        let (documents, phrasings) = summed_documents(&kb, &featurizer, |v| v);
        let norms = documents.chunks(dim).map(|row| row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6)).collect();
        let retrieval_featurizer = retriever.featurizer()?;
        Ok(Self {
            kb: Arc::new(kb),
            retriever: Arc::new(retriever),
            retrieval_featurizer,
            featurizer,
            documents,
            norms,
            phrasings,
            k,
        })
    }

    /// The knowledge base.
    pub fn kb(&self) -> &Arc<KnowledgeBase> {
        &self.kb
    }

    /// The first-stage retriever.
    pub fn retriever(&self) -> &Arc<Retriever> {
        &self.retriever
    }

    /// Candidates per question.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The pair network's feature settings.
    pub fn features(&self) -> &FeaturizerConfig {
        self.featurizer.config()
    }

    /// Length of the pair network's input vectors.
    pub fn feature_dim(&self) -> usize {
        self.featurizer.config().dim
    }

    /// The question `heard`, retrieved (into `out`, whose buffers are
    /// reused). In training, `asked` is the phrasing heard: when the index
    /// holds it, it is left out of its entry's retrieval score and features,
    /// so the model learns on questions as new to it as users' will be.
    pub fn retrieve_into(&self, heard: &str, asked: Option<&Question>, out: &mut Retrieved) {
        let mut features = std::mem::take(&mut out.features);
        self.retrieval_featurizer.sparse(heard, &mut features);
        self.retriever.scores_into(&features, asked, &mut out.retrieval);
        out.left_out = asked.map(Question::id).filter(|id| self.phrasings.contains_key(id));
        Retriever::top_into(&out.retrieval, self.k, &mut out.candidates);
        self.featurizer.sparse(heard, &mut features);
        out.features = features;
    }

    /// The question `heard`, retrieved (nothing left out).
    pub fn retrieve(&self, heard: &str) -> Retrieved {
        let mut out = Retrieved::default();
        self.retrieve_into(heard, None, &mut out);
        out
    }

    /// Entry `entry`'s features, normalised, without the phrasing `left_out`
    /// when it is one of the entry's, into `row`.
    fn document_into(&self, entry: usize, left_out: Option<PhrasingId>, row: &mut Vec<f32>) {
        let dim = self.feature_dim();
        row.clear();
        row.extend_from_slice(&self.documents[entry * dim..(entry + 1) * dim]);
        if let Some(phrasing) = left_out.filter(|id| id.0 == entry).and_then(|id| self.phrasings.get(&id)) {
            for (&i, &v) in phrasing.indices.iter().zip(&phrasing.values) {
                row[i as usize] -= v;
            }
        }
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 1e-6 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }

    /// The pair network's predictions for `rows` (a question's features, a
    /// choice and the phrasing left out, if any), answering rows first, then "I don't know" rows: the
    /// returned order of rows is the one of the result's entries.
    pub fn predict<B: Backend>(
        &self,
        network: &PairQNetwork<B>,
        rows: &[(&SparseFeatures, Choice, Option<PhrasingId>)],
        device: &B::Device,
    ) -> (Tensor<B, 2>, Vec<usize>) {
        let dim = self.feature_dim();
        let answers: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1.entry().is_some()).collect();
        let abstains: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1.entry().is_none()).collect();
        let dense = |which: &[usize]| {
            let mut data = vec![0.0f32; which.len() * dim];
            for (row, &i) in which.iter().enumerate() {
                let features = rows[i].0;
                for (&j, &v) in features.indices.iter().zip(&features.values) {
                    data[row * dim + j as usize] = v;
                }
            }
            Tensor::<B, 2>::from_data(TensorData::new(data, [which.len(), dim]), device)
        };
        let column =
            |values: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(values.clone(), [values.len(), 1]), device);
        let mut parts = Vec::with_capacity(2);
        if !answers.is_empty() {
            let mut documents = Vec::with_capacity(answers.len() * dim);
            let mut retrieval = Vec::with_capacity(answers.len());
            let mut row = Vec::with_capacity(dim);
            for &i in &answers {
                if let (_, Choice::Answer { entry, retrieval: r }, left_out) = rows[i] {
                    self.document_into(entry, left_out, &mut row);
                    documents.extend_from_slice(&row);
                    retrieval.push(r);
                }
            }
            let documents = Tensor::from_data(TensorData::new(documents, [answers.len(), dim]), device);
            parts.push(network.forward(dense(&answers), documents, column(retrieval)));
        }
        if !abstains.is_empty() {
            let best: Vec<f32> = abstains
                .iter()
                .map(|&i| match rows[i].1 {
                    Choice::Abstain { best_retrieval } => best_retrieval,
                    Choice::Answer { retrieval, .. } => retrieval,
                })
                .collect();
            parts.push(network.abstain(dense(&abstains), column(best)));
        }
        let order = answers.into_iter().chain(abstains).collect();
        let predictions = if parts.len() == 1 { parts.remove(0) } else { Tensor::cat(parts, 0) };
        (predictions, order)
    }

    /// The decision of `network`'s host copy on one question: what serving
    /// runs (the same Q-values as [`AnswerIndex::decide`] to rounding).
    pub fn decide_host(&self, network: &HostPair, retrieved: Retrieved) -> Decision {
        let dim = self.feature_dim();
        let e_q = network.embed_question(&retrieved.features);
        let mut scratch = HostScratch::default();
        let q = retrieved
            .candidates
            .iter()
            .map(|&entry| {
                let document = (&self.documents[entry * dim..(entry + 1) * dim], self.norms[entry]);
                let (features, retrieval) = (&retrieved.features, retrieved.retrieval[entry]);
                network.q(features, e_q.as_deref(), document, retrieval, &mut scratch)
            })
            .collect();
        let abstain_q = network.abstain(e_q.as_deref(), retrieved.best_retrieval(), &mut scratch);
        Decision { retrieved, q, abstain_q }
    }

    /// The network's decisions on `retrieved` questions (one batch).
    pub fn decide<B: Backend>(&self, network: &PairQNetwork<B>, retrieved: Vec<Retrieved>) -> Vec<Decision> {
        if retrieved.is_empty() {
            return Vec::new();
        }
        let device = network.devices().into_iter().next().unwrap_or_default();
        let rows: Vec<(&SparseFeatures, Choice, Option<PhrasingId>)> = retrieved
            .iter()
            .flat_map(|r| {
                let answers = r.candidates.iter().map(move |&c| (&r.features, r.answer(c), r.left_out));
                answers.chain([(&r.features, r.abstain(), r.left_out)])
            })
            .collect();
        let (predictions, order) = self.predict(network, &rows, &device);
        let values = predictions.into_data().to_vec::<f32>().unwrap_or_default();
        let mut by_row = vec![0.0f32; rows.len()];
        for (value, row) in values.into_iter().zip(order) {
            by_row[row] = value;
        }
        let mut offset = 0;
        retrieved
            .into_iter()
            .map(|r| {
                let n = r.candidates.len();
                let q = by_row[offset..offset + n].to_vec();
                let abstain_q = by_row[offset + n];
                offset += n + 1;
                Decision { retrieved: r, q, abstain_q }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rlhf_model::backend::{CpuBackend, cpu_device};

    use super::*;
    use crate::qa::pair::PairConfig;

    #[test]
    fn decisions_score_every_candidate_and_abstaining_in_one_batch() {
        let index = AnswerIndex::new(KnowledgeBase::builtin().unwrap(), FeaturizerConfig::default(), 5).unwrap();
        let network =
            PairConfig { input_dim: index.feature_dim(), embedding: 8, hidden: 8 }.init::<CpuBackend>(&cpu_device(), 1);
        let questions = ["how do I pair my phone", "空调的除湿模式怎么开"];
        let decisions = index.decide(&network, questions.iter().map(|q| index.retrieve(q)).collect());
        assert_eq!(decisions.len(), 2);
        for (decision, question) in decisions.iter().zip(questions) {
            assert_eq!(decision.q.len(), 5);
            assert_eq!(decision.retrieved, index.retrieve(question));
            // The batch gives each row what it gives alone.
            let alone = &index.decide(&network, vec![index.retrieve(question)])[0];
            for (a, b) in alone.q.iter().chain([&alone.abstain_q]).zip(decision.q.iter().chain([&decision.abstain_q])) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            let mut ranked = decision.ranking();
            ranked.sort_unstable();
            let mut candidates = decision.retrieved.candidates.clone();
            candidates.sort_unstable();
            assert_eq!(ranked, candidates);
        }
        // The host copy gives the same Q-values, with and without an embedding.
        for embedding in [0, 8] {
            let network = PairConfig { input_dim: index.feature_dim(), embedding, hidden: 8 }
                .init::<CpuBackend>(&cpu_device(), 2);
            let host = network.to_host().unwrap();
            for question in questions {
                let burn = &index.decide(&network, vec![index.retrieve(question)])[0];
                let on_host = index.decide_host(&host, index.retrieve(question));
                for (a, b) in burn.q.iter().chain([&burn.abstain_q]).zip(on_host.q.iter().chain([&on_host.abstain_q])) {
                    assert!((a - b).abs() < 1e-5, "embedding {embedding}: {a} vs {b}");
                }
            }
        }
        let abstaining = Decision { retrieved: decisions[0].retrieved.clone(), q: vec![-0.5; 5], abstain_q: -0.1 };
        assert_eq!(abstaining.choice(), None);
        let answering = Decision { q: vec![-0.5, 0.3, 0.2, 0.0, -1.0], ..abstaining };
        assert_eq!(answering.choice(), Some(answering.retrieved.candidates[1]));
        assert_eq!(answering.ranking()[..2], [answering.retrieved.candidates[1], answering.retrieved.candidates[2]]);
    }
}
