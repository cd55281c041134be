//! The (question, answer) pair Q-network: one Q-value for a question and
//! one candidate answer, so an answer added later is scored by the same
//! weights, without a new output and without retraining.
//!
//! With `q` and `a` the hashed n-gram features of the question and of the
//! answer's entry (its answers and known phrasings, see
//! [`AnswerIndex`](super::index::AnswerIndex)), and `s` the retriever's
//! cosine between them:
//!
//! - `e_q = tanh(W_e q + b_e)`, `e_a = tanh(W_e a + b_e)`: one embedding
//!   layer (`embedding` wide) for both sides, so what it learns about
//!   matching wording carries over to answers it was not trained on;
//! - `o = u · (q ⊙ a) + d`: a learned weight per n-gram that both texts
//!   share (a learned term weighting, as TF-IDF's is fixed);
//! - `Q(q, a) = w · relu(W_h [s, o, e_q ⊙ e_a, |e_q − e_a|] + b_h) + b`
//!   (without the embedding terms when `embedding` is 0);
//! - "I don't know" is scored from the question and the best retrieval
//!   score among the candidates, `m`:
//!   `Q(q, ∅) = v · relu(W_u [m, e_q] + b_u) + c`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, activation};
use rlhf_env::rng::seeded_rng;
use rlhf_model::text::SparseFeatures;
use rlhf_model::{HostLinear, ModelError, uniform_linear};
use serde::{Deserialize, Serialize};

/// The pair network's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// Length of the question's and the answer's feature vectors.
    pub input_dim: usize,
    /// Width of each text's embedding; 0 leaves the embedding out (the
    /// network then scores from the retrieval cosine and the learned term
    /// weighting alone).
    pub embedding: usize,
    /// Width of the scoring layer.
    pub hidden: usize,
}

impl PairConfig {
    /// Builds the network on `device`, every layer drawn from `seed` in a
    /// fixed order (the same seed gives the same network on every backend).
    pub fn init<B: Backend>(&self, device: &B::Device, seed: u64) -> PairQNetwork<B> {
        let mut rng = seeded_rng(seed);
        let mut linear = |d_in: usize, d_out: usize| uniform_linear(d_in, d_out, &mut rng, device);
        let embedding = (self.embedding > 0).then(|| linear(self.input_dim, self.embedding));
        PairQNetwork {
            embedding,
            overlap: linear(self.input_dim, 1),
            hidden: linear(2 * self.embedding + 2, self.hidden),
            out: linear(self.hidden, 1),
            abstain_hidden: linear(self.embedding + 1, self.hidden),
            abstain_out: linear(self.hidden, 1),
        }
    }
}

/// The pair Q-network (see the module docs).
#[derive(Module, Debug)]
pub struct PairQNetwork<B: Backend> {
    embedding: Option<Linear<B>>,
    overlap: Linear<B>,
    hidden: Linear<B>,
    out: Linear<B>,
    abstain_hidden: Linear<B>,
    abstain_out: Linear<B>,
}

impl<B: Backend> PairQNetwork<B> {
    /// A text's embedding (questions and answers share the layer), if the network has one.
    fn embed(&self, features: Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        self.embedding.as_ref().map(|layer| activation::tanh(layer.forward(features)))
    }

    /// `Q(question, answer)` for `n` pairs: features `[n, input_dim]` each,
    /// retrieval scores `[n, 1]`; returns `[n, 1]`.
    pub fn forward(&self, questions: Tensor<B, 2>, answers: Tensor<B, 2>, retrieval: Tensor<B, 2>) -> Tensor<B, 2> {
        let overlap = self.overlap.forward(questions.clone() * answers.clone());
        let mut joint = vec![retrieval, overlap];
        if let (Some(e_q), Some(e_a)) = (self.embed(questions), self.embed(answers)) {
            joint.extend([e_q.clone() * e_a.clone(), (e_q - e_a).abs()]);
        }
        self.out.forward(activation::relu(self.hidden.forward(Tensor::cat(joint, 1))))
    }

    /// `Q(question, I don't know)` for `n` questions, given the best
    /// retrieval score among each one's candidates `[n, 1]`; returns `[n, 1]`.
    pub fn abstain(&self, questions: Tensor<B, 2>, best_retrieval: Tensor<B, 2>) -> Tensor<B, 2> {
        let joint = match self.embed(questions) {
            Some(e_q) => Tensor::cat(vec![best_retrieval, e_q], 1),
            None => best_retrieval,
        };
        self.abstain_out.forward(activation::relu(self.abstain_hidden.forward(joint)))
    }
}

/// A [`PairQNetwork`]'s weights in host memory: answering one question
/// with plain loops, without burn's per-call dispatch (the serving path;
/// tests check it against [`PairQNetwork::forward`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostPair {
    embedding: Option<HostLinear>,
    overlap: HostLinear,
    hidden: HostLinear,
    out: HostLinear,
    abstain_hidden: HostLinear,
    abstain_out: HostLinear,
}

impl<B: Backend> PairQNetwork<B> {
    /// A host copy of the weights.
    pub fn to_host(&self) -> Result<HostPair, ModelError> {
        Ok(HostPair {
            embedding: self.embedding.as_ref().map(|l| HostLinear::from_linear(l, "embedding")).transpose()?,
            overlap: HostLinear::from_linear(&self.overlap, "overlap")?,
            hidden: HostLinear::from_linear(&self.hidden, "hidden")?,
            out: HostLinear::from_linear(&self.out, "out")?,
            abstain_hidden: HostLinear::from_linear(&self.abstain_hidden, "abstain_hidden")?,
            abstain_out: HostLinear::from_linear(&self.abstain_out, "abstain_out")?,
        })
    }
}

/// Buffers [`HostPair`] reuses from one candidate to the next, so
/// scoring a question's candidates allocates once.
#[derive(Debug, Clone, Default)]
pub struct HostScratch {
    joint: Vec<f32>,
    hidden: Vec<f32>,
    out: Vec<f32>,
    document: Vec<f32>,
    e_a: Vec<f32>,
}

impl HostPair {
    /// The question's embedding, if the network has one.
    pub fn embed_question(&self, question: &SparseFeatures) -> Option<Vec<f32>> {
        self.embedding.as_ref().map(|layer| {
            let mut e = Vec::new();
            layer.forward_sparse(&question.indices, &question.values, &mut e);
            e.iter_mut().for_each(|v| *v = v.tanh());
            e
        })
    }

    /// `Q(question, answer)`: the question's sparse features and embedding
    /// ([`HostPair::embed_question`]), the answer's features as `document`
    /// divided by `norm`, and their retrieval cosine.
    pub fn q(
        &self,
        question: &SparseFeatures,
        e_q: Option<&[f32]>,
        (document, norm): (&[f32], f32),
        retrieval: f32,
        scratch: &mut HostScratch,
    ) -> f32 {
        let weight = self.overlap.weight();
        let overlap = question
            .indices
            .iter()
            .zip(&question.values)
            .map(|(&i, &v)| weight[i as usize] * v * document[i as usize])
            .sum::<f32>()
            / norm
            + self.overlap.bias()[0];
        let mut joint = std::mem::take(&mut scratch.joint);
        joint.clear();
        joint.extend([retrieval, overlap]);
        if let (Some(layer), Some(e_q)) = (&self.embedding, e_q) {
            scratch.document.clear();
            scratch.document.extend(document.iter().map(|v| v / norm));
            layer.forward(&scratch.document, &mut scratch.e_a);
            scratch.e_a.iter_mut().for_each(|v| *v = v.tanh());
            joint.extend(e_q.iter().zip(&scratch.e_a).map(|(q, a)| q * a));
            joint.extend(e_q.iter().zip(&scratch.e_a).map(|(q, a)| (q - a).abs()));
        }
        let q = head(&self.hidden, &self.out, &joint, scratch);
        scratch.joint = joint;
        q
    }

    /// `Q(question, I don't know)` given the best candidate's retrieval cosine.
    pub fn abstain(&self, e_q: Option<&[f32]>, best_retrieval: f32, scratch: &mut HostScratch) -> f32 {
        let mut joint = std::mem::take(&mut scratch.joint);
        joint.clear();
        joint.push(best_retrieval);
        joint.extend(e_q.into_iter().flatten());
        let q = head(&self.abstain_hidden, &self.abstain_out, &joint, scratch);
        scratch.joint = joint;
        q
    }
}

/// `out(relu(hidden(joint)))`, the one output of a scoring head.
fn head(hidden: &HostLinear, out: &HostLinear, joint: &[f32], scratch: &mut HostScratch) -> f32 {
    hidden.forward(joint, &mut scratch.hidden);
    scratch.hidden.iter_mut().for_each(|v| *v = v.max(0.0));
    out.forward(&scratch.hidden, &mut scratch.out);
    scratch.out.first().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::tensor::TensorData;
    use rlhf_model::backend::{CpuBackend, cpu_device};
    use rlhf_model::text::{FeaturizerConfig, HashedNgrams, TextFeaturizer};

    use super::*;
    use crate::corpus::{Language, Split};
    use crate::qa::kb::KnowledgeBase;

    type AD = Autodiff<CpuBackend>;

    fn features(featurizer: &HashedNgrams, texts: &[&str]) -> Tensor<AD, 2> {
        let dim = featurizer.dim();
        let mut all = Vec::with_capacity(texts.len() * dim);
        let mut one = Vec::new();
        for text in texts {
            featurizer.featurize(text, &mut one);
            all.extend_from_slice(&one);
        }
        Tensor::from_data(TensorData::new(all, [texts.len(), dim]), &cpu_device())
    }

    #[test]
    fn the_same_seed_gives_the_same_network_and_shapes_follow_the_pairs() {
        let config = PairConfig { input_dim: 16, embedding: 8, hidden: 4 };
        let (a, b) = (config.init::<AD>(&cpu_device(), 3), config.init::<AD>(&cpu_device(), 3));
        let x = Tensor::<AD, 2>::from_data(
            TensorData::new((0..48).map(|i| i as f32 / 48.0).collect(), [3, 16]),
            &cpu_device(),
        );
        let s = Tensor::<AD, 2>::zeros([3, 1], &cpu_device());
        let qa = a.forward(x.clone(), x.clone(), s.clone()).into_data().to_vec::<f32>().unwrap();
        assert_eq!(qa, b.forward(x.clone(), x.clone(), s.clone()).into_data().to_vec::<f32>().unwrap());
        assert_eq!(qa.len(), 3);
        assert_eq!(a.abstain(x, s).dims(), [3, 1]);
    }

    /// Trained on pairs of the first 8 built-in entries (right: +1, wrong:
    /// −1), the right answer scores highest for at least half the held-out
    /// phrasings (chance: one in 8); the answers' own
    /// text is the input, so no entry is an output index.
    #[test]
    fn pairs_learn_to_rank_the_right_answer_first_on_held_out_phrasings() {
        let kb = KnowledgeBase::builtin().unwrap();
        let entries = 8;
        let featurizer = HashedNgrams::new(FeaturizerConfig::default()).unwrap();
        let answers: Vec<String> = kb.entries()[..entries]
            .iter()
            .map(|e| format!("{} {}", e.answer(Language::En), e.answer(Language::Zh)))
            .collect();
        let answer_refs: Vec<&str> = answers.iter().map(String::as_str).collect();
        let train: Vec<_> = kb.questions(Split::Train).into_iter().filter(|q| q.entry < entries).collect();
        let test: Vec<_> = kb.questions(Split::Test).into_iter().filter(|q| q.entry < entries).collect();
        let config = PairConfig { input_dim: featurizer.dim(), embedding: 32, hidden: 32 };
        let mut network = config.init::<AD>(&cpu_device(), 0);
        let mut optimizer = AdamConfig::new().init::<AD, PairQNetwork<AD>>();
        // Every (train question, answer) pair, its target +1 or −1.
        let mut pairs_q = Vec::new();
        let mut pairs_a = Vec::new();
        let mut targets = Vec::new();
        for q in &train {
            for (e, answer) in answer_refs.iter().enumerate() {
                pairs_q.push(q.text.as_str());
                pairs_a.push(*answer);
                targets.push(if e == q.entry { 1.0f32 } else { -1.0 });
            }
        }
        let (questions, answer_features) = (features(&featurizer, &pairs_q), features(&featurizer, &pairs_a));
        let n = targets.len();
        let target = Tensor::<AD, 2>::from_data(TensorData::new(targets, [n, 1]), &cpu_device());
        let retrieval = Tensor::<AD, 2>::zeros([n, 1], &cpu_device());
        for _ in 0..150 {
            let q = network.forward(questions.clone(), answer_features.clone(), retrieval.clone());
            let loss = (q - target.clone()).powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &network);
            network = optimizer.step(3e-3, network, grads);
        }
        let candidates = features(&featurizer, &answer_refs);
        let zero = Tensor::<AD, 2>::zeros([entries, 1], &cpu_device());
        let right = test
            .iter()
            .filter(|q| {
                let question = features(&featurizer, &[q.text.as_str()]).repeat_dim(0, entries);
                let scores =
                    network.forward(question, candidates.clone(), zero.clone()).into_data().to_vec::<f32>().unwrap();
                rlhf_model::argmax(&scores) == q.entry
            })
            .count();
        assert!(right * 2 >= test.len(), "{right} of {} held-out phrasings ranked first", test.len());
    }
}
