//! The cheap first stage: TF-IDF over hashed n-grams, cosine similarity,
//! the top k entries as candidates for the answer model to choose from.
//!
//! Each entry is one document: its training phrasings in both languages
//! and its answers. Term weights are the smoothed inverse document
//! frequency over the entries, `ln((1 + N) / (1 + df)) + 1`, applied to the
//! featuriser's counts; documents and queries are L2-normalised, so a score
//! is a cosine in [0, 1].

use rlhf_model::text::{FeaturizerConfig, HashedNgrams, SparseFeatures};

use super::kb::KnowledgeBase;
use crate::AssistantError;
use crate::corpus::{Language, Split};

/// A TF-IDF index of a knowledge base.
#[derive(Debug, Clone)]
pub struct Retriever {
    /// The featuriser's settings (the featuriser itself keeps per-thread
    /// scratch, so each query makes its own and the index stays `Sync`).
    config: FeaturizerConfig,
    idf: Vec<f32>,
    /// Row-major: entry × dim, each row L2-normalised.
    documents: Vec<f32>,
    entries: usize,
}

fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

impl Retriever {
    /// The featuriser settings the retriever uses by default: 65,536
    /// buckets and character n-grams up to 4. On the built-in test
    /// phrasings (no noise) recall@10 is 0.976 (zh) and 0.929 (en), against
    /// 0.929 and 0.798 with the intent model's 2,048 buckets and 3-grams.
    pub fn default_config() -> FeaturizerConfig {
        FeaturizerConfig { dim: 1 << 16, max_n: 4, ..FeaturizerConfig::default() }
    }

    /// Indexes `kb`'s entries (their training phrasings and answers).
    pub fn new(kb: &KnowledgeBase, config: FeaturizerConfig) -> Result<Self, AssistantError> {
        let featurizer = HashedNgrams::new(config)?;
        let dim = config.dim;
        let mut documents = vec![0.0f32; kb.len() * dim];
        let mut features = SparseFeatures::default();
        let train = kb.questions(Split::Train);
        for (index, entry) in kb.entries().iter().enumerate() {
            let row = &mut documents[index * dim..(index + 1) * dim];
            let texts = train
                .iter()
                .filter(|q| q.entry == index)
                .map(|q| q.text.as_str())
                .chain(Language::ALL.iter().map(|&l| entry.answer(l)));
            for text in texts {
                featurizer.sparse(text, &mut features);
                for (&i, &v) in features.indices.iter().zip(&features.values) {
                    row[i as usize] += v.abs();
                }
            }
        }
        let mut df = vec![0usize; dim];
        for row in documents.chunks(dim) {
            for (d, &v) in df.iter_mut().zip(row) {
                *d += usize::from(v > 0.0);
            }
        }
        let n = kb.len() as f32;
        let idf: Vec<f32> = df.iter().map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0).collect();
        for row in documents.chunks_mut(dim) {
            row.iter_mut().zip(&idf).for_each(|(v, w)| *v *= w);
            normalise(row);
        }
        Ok(Self { config, idf, documents, entries: kb.len() })
    }

    /// A featuriser with the index's settings (the featuriser keeps
    /// per-thread scratch, so each caller owns one and the index stays `Sync`).
    pub fn featurizer(&self) -> Result<HashedNgrams, AssistantError> {
        Ok(HashedNgrams::new(self.config)?)
    }

    /// Every entry's cosine similarity to the text of `features` (from
    /// [`Retriever::featurizer`]), in entry order, into `scores`.
    pub fn scores_into(&self, features: &SparseFeatures, scores: &mut Vec<f32>) {
        let weight = |(&i, &v): (&u32, &f32)| v.abs() * self.idf[i as usize];
        let norm = features.indices.iter().zip(&features.values).map(|p| weight(p).powi(2)).sum::<f32>().sqrt();
        let norm = norm.max(f32::MIN_POSITIVE);
        let dim = self.idf.len();
        scores.clear();
        scores.extend(self.documents.chunks(dim).take(self.entries).map(|row| {
            features.indices.iter().zip(&features.values).map(|p| row[*p.0 as usize] * weight(p)).sum::<f32>() / norm
        }));
    }

    /// The `k` best entries by `scores`, best first (ties by entry order), into `order`.
    pub fn top_into(scores: &[f32], k: usize, order: &mut Vec<usize>) {
        order.clear();
        order.extend(0..scores.len());
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(k);
    }

    /// Every entry's cosine similarity to `text`, in entry order.
    pub fn scores(&self, text: &str) -> Result<Vec<f32>, AssistantError> {
        let mut features = SparseFeatures::default();
        self.featurizer()?.sparse(text, &mut features);
        let mut scores = Vec::new();
        self.scores_into(&features, &mut scores);
        Ok(scores)
    }

    /// The `k` best entries for `text`, best first (ties by entry order).
    pub fn top(&self, text: &str, k: usize) -> Result<Vec<usize>, AssistantError> {
        let mut order = Vec::new();
        Self::top_into(&self.scores(text)?, k, &mut order);
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::kb::QaEntry;

    fn entry(id: &str, answer: &str, questions: &[&str]) -> QaEntry {
        QaEntry {
            id: id.into(),
            domain: "test".into(),
            answer_zh: None,
            answer_en: Some(answer.into()),
            questions_zh: Vec::new(),
            questions_en: questions.iter().map(|q| (*q).to_owned()).collect(),
        }
    }

    #[test]
    fn scores_are_cosines_and_the_matching_entry_ranks_first() {
        let kb = KnowledgeBase::new(
            vec![
                entry("alarm", "Up to 30 alarms.", &["how many alarms can I set", "alarm limit"]),
                entry("tyre", "2.5 bar front and rear.", &["what tyre pressure", "how much air in the tyres"]),
            ],
            "test",
        )
        .unwrap();
        let retriever = Retriever::new(&kb, FeaturizerConfig::default()).unwrap();
        let scores = retriever.scores("how many alarms").unwrap();
        assert!(scores.iter().all(|s| (0.0..=1.0 + 1e-6).contains(s)), "{scores:?}");
        assert_eq!(retriever.top("how many alarms", 2).unwrap(), [0, 1]);
        assert_eq!(retriever.top("tyre pressure please", 1).unwrap(), [1]);
        // Nothing in common with anything: 0 everywhere.
        assert!(retriever.scores("").unwrap().iter().all(|&s| s == 0.0));
    }
}

#[cfg(test)]
mod recall {
    use super::*;

    /// Recall@k of the built-in test phrasings (no noise), by language.
    fn recall(kb: &KnowledgeBase, retriever: &Retriever, k: usize, language: Language) -> f64 {
        let questions: Vec<_> = kb.questions(Split::Test).into_iter().filter(|q| q.language == language).collect();
        let hits = questions.iter().filter(|q| retriever.top(&q.text, k).unwrap().contains(&q.entry)).count();
        hits as f64 / questions.len() as f64
    }

    #[test]
    fn the_retriever_finds_most_answers_among_ten_candidates() {
        let kb = KnowledgeBase::builtin().unwrap();
        let retriever = Retriever::new(&kb, Retriever::default_config()).unwrap();
        for language in Language::ALL {
            let (at1, at10) = (recall(&kb, &retriever, 1, language), recall(&kb, &retriever, 10, language));
            eprintln!("{language:?}: recall@1 {at1:.3}, recall@10 {at10:.3}");
            assert!(at10 >= at1);
            assert!(at10 >= 0.9, "{language:?}: recall@10 {at10}");
        }
    }
}
