//! A host-memory copy of a Q-network for acting on one observation at a time.
//!
//! Acting is on the hot path of every environment step, with a batch of one.
//! There a burn call costs microseconds of dispatch for a few thousand
//! multiply-adds, so the weights are copied out (after each burst of
//! gradient steps) and evaluated with plain loops. The arithmetic is the same
//! MLP as [`crate::QNetwork::forward`]; the tests check both give the same
//! actions and Q-values to float rounding.

use std::sync::Arc;

use burn::nn::Linear;
use burn::tensor::TensorData;
use burn::tensor::backend::Backend;

use crate::error::ModelError;
use crate::qnetwork::Activation;

/// One dense layer: `out = x · W + b`, `W` row-major `[d_in, d_out]` as burn stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLinear {
    pub(crate) d_in: usize,
    pub(crate) d_out: usize,
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
}

impl HostLinear {
    /// A copy of burn's `layer`; `name` names it in errors.
    pub fn from_linear<B: Backend>(layer: &Linear<B>, name: &str) -> Result<Self, ModelError> {
        let [d_in, d_out] = layer.weight.dims();
        let to_vec = |tensor: TensorData, what: &str| {
            tensor
                .to_vec::<f32>()
                .map_err(|e| ModelError::TensorRead { what: what.to_owned(), message: format!("{e:?}") })
        };
        let weight = to_vec(layer.weight.val().into_data(), &format!("{name}.weight"))?;
        let bias = match &layer.bias {
            Some(bias) => to_vec(bias.val().into_data(), &format!("{name}.bias"))?,
            None => vec![0.0; d_out],
        };
        Ok(Self { d_in, d_out, weight, bias })
    }

    /// The input size.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// The output size.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// The weights, row-major `[d_in, d_out]`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// The bias, `d_out` values.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// `x · W + b` into `out`.
    pub fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.bias);
        for (xi, row) in x.iter().zip(self.weight.chunks_exact(self.d_out)) {
            for (o, w) in out.iter_mut().zip(row) {
                *o += xi * w;
            }
        }
    }

    /// `x · W + b` for a sparse `x` (`indices` ascending, below `d_in`, with their `values`) into `out`.
    pub fn forward_sparse(&self, indices: &[u32], values: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.bias);
        for (&i, &v) in indices.iter().zip(values) {
            let row = &self.weight[i as usize * self.d_out..(i as usize + 1) * self.d_out];
            for (o, w) in out.iter_mut().zip(row) {
                *o += v * w;
            }
        }
    }
}

/// The layers of a [`HostQNetwork`], shared by its clones.
#[derive(Debug, PartialEq)]
struct HostLayers {
    hidden: Vec<HostLinear>,
    head: HostLinear,
    value: Option<HostLinear>,
    activation: Activation,
}

/// A Q-network's weights in host memory, evaluated one observation at a time.
///
/// The weights are shared: a clone costs a reference count and its own
/// scratch buffers, so each thread serving answers can hold one.
#[derive(Debug, Clone, PartialEq)]
pub struct HostQNetwork {
    layers: Arc<HostLayers>,
    /// Scratch buffers reused by every call, so acting allocates nothing.
    scratch: [Vec<f32>; 2],
    q: Vec<f32>,
}

impl HostQNetwork {
    pub(crate) fn new(
        hidden: Vec<HostLinear>,
        head: HostLinear,
        value: Option<HostLinear>,
        activation: Activation,
    ) -> Self {
        let widest = hidden.iter().map(|l| l.d_out).chain([head.d_in, head.d_out]).max().unwrap_or(1);
        let q = Vec::with_capacity(head.d_out);
        let layers = Arc::new(HostLayers { hidden, head, value, activation });
        Self { layers, scratch: [Vec::with_capacity(widest), Vec::with_capacity(widest)], q }
    }

    /// Whether `other` is a clone of this network (the same weights in memory).
    pub fn shares_weights(&self, other: &HostQNetwork) -> bool {
        Arc::ptr_eq(&self.layers, &other.layers)
    }

    /// The input size.
    pub fn obs_dim(&self) -> usize {
        self.layers.hidden.first().unwrap_or(&self.layers.head).d_in
    }

    /// The number of actions.
    pub fn n_actions(&self) -> usize {
        self.layers.head.d_out
    }

    /// The Q-value of every action for one observation.
    pub fn q_values(&mut self, obs: &[f32]) -> Result<&[f32], ModelError> {
        if obs.len() != self.obs_dim() {
            return Err(ModelError::ShapeMismatch { what: "observation", expected: self.obs_dim(), found: obs.len() });
        }
        let a = &mut self.scratch[0];
        a.clear();
        a.extend_from_slice(obs);
        self.forward_from(0)
    }

    /// The Q-values for a sparse observation: `values[k]` at index
    /// `indices[k]`, zero elsewhere. The first layer then costs one weight row
    /// per non-zero instead of the whole matrix, which is what makes text
    /// features (a few dozen non-zeros out of thousands) cheap to act on.
    pub fn q_values_sparse(&mut self, indices: &[u32], values: &[f32]) -> Result<&[f32], ModelError> {
        self.hidden_sparse(indices, values)?;
        self.head_from_scratch()
    }

    /// The last hidden layer's activations for a sparse observation (the
    /// input itself for a network without hidden layers): what the output
    /// layer reads, e.g. to imprint a new output ([`crate::QNetwork::with_output`]).
    pub fn hidden_features_sparse(&mut self, indices: &[u32], values: &[f32]) -> Result<&[f32], ModelError> {
        self.hidden_sparse(indices, values)?;
        Ok(&self.scratch[0])
    }

    /// Runs every hidden layer on a sparse observation, leaving the result in `scratch[0]`.
    fn hidden_sparse(&mut self, indices: &[u32], values: &[f32]) -> Result<(), ModelError> {
        let dim = self.obs_dim();
        if indices.len() != values.len() {
            return Err(ModelError::ShapeMismatch {
                what: "sparse values",
                expected: indices.len(),
                found: values.len(),
            });
        }
        if let Some(&bad) = indices.iter().find(|&&i| i as usize >= dim) {
            return Err(ModelError::ShapeMismatch {
                what: "sparse index bound",
                expected: dim,
                found: bad as usize + 1,
            });
        }
        let Some(first) = self.layers.hidden.first() else {
            // No hidden layer: the dueling value head reads the input itself, so densify.
            let a = &mut self.scratch[0];
            a.clear();
            a.resize(dim, 0.0);
            indices.iter().zip(values).for_each(|(&i, &v)| a[i as usize] += v);
            return Ok(());
        };
        let out = &mut self.scratch[0];
        out.clear();
        out.extend_from_slice(&first.bias);
        for (&i, &v) in indices.iter().zip(values) {
            let row = &first.weight[i as usize * first.d_out..][..first.d_out];
            for (o, w) in out.iter_mut().zip(row) {
                *o += v * w;
            }
        }
        activate(self.layers.activation, &mut self.scratch[0]);
        self.hidden_from(1);
        Ok(())
    }

    /// Runs hidden layers `first..` and the head on `scratch[0]`.
    fn forward_from(&mut self, first: usize) -> Result<&[f32], ModelError> {
        self.hidden_from(first);
        self.head_from_scratch()
    }

    /// Runs hidden layers `first..` on `scratch[0]`, in place.
    fn hidden_from(&mut self, first: usize) {
        let layers = &self.layers;
        for layer in &layers.hidden[first.min(layers.hidden.len())..] {
            let [a, b] = &mut self.scratch;
            layer.forward(a, b);
            std::mem::swap(a, b);
            activate(layers.activation, a);
        }
    }

    /// Runs the head (and a dueling value head) on the last hidden activations in `scratch[0]`.
    fn head_from_scratch(&mut self) -> Result<&[f32], ModelError> {
        let [a, _] = &self.scratch;
        self.layers.head.forward(a, &mut self.q);
        self.apply_dueling();
        Ok(&self.q)
    }

    /// With a dueling head, turns the advantages in `q` into Q-values using the
    /// last hidden activations in `scratch[0]`.
    fn apply_dueling(&mut self) {
        if let Some(value) = &self.layers.value {
            let [a, b] = &mut self.scratch;
            value.forward(a, b);
            let mean = self.q.iter().sum::<f32>() / self.q.len() as f32;
            let v = b[0];
            self.q.iter_mut().for_each(|q| *q = v + *q - mean);
        }
    }

    /// The action with the largest Q-value (the first one on ties).
    pub fn greedy_action(&mut self, obs: &[f32]) -> Result<usize, ModelError> {
        Ok(argmax(self.q_values(obs)?))
    }
}

/// Applies `activation` to a hidden layer's output in place.
pub(crate) fn activate(activation: Activation, values: &mut [f32]) {
    match activation {
        Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Tanh => values.iter_mut().for_each(|v| *v = v.tanh()),
    }
}

/// Index of the largest value, the first on ties; 0 for an empty slice.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QNetworkConfig;
    use crate::backend::{CpuBackend, cpu_device};
    use burn::tensor::{Tensor, TensorData};
    use rlhf_env::rng::{seeded_rng, uniform_f64};

    #[test]
    fn host_copy_agrees_with_burn_forward() {
        for (dueling, activation) in [(false, Activation::Relu), (true, Activation::Relu), (false, Activation::Tanh)] {
            let config =
                QNetworkConfig::new(6, 3).with_hidden(vec![32, 16]).with_dueling(dueling).with_activation(activation);
            let net = config.init::<CpuBackend>(&cpu_device(), 5);
            let mut host = net.to_host().unwrap();
            let mut rng = seeded_rng(1);
            let batch = 200;
            let obs: Vec<f32> = (0..batch * 6).map(|_| uniform_f64(&mut rng, -3.0, 3.0) as f32).collect();
            let q_burn = net.forward(Tensor::from_data(TensorData::new(obs.clone(), [batch, 6]), &cpu_device()));
            let q_burn = q_burn.into_data().to_vec::<f32>().unwrap();
            let mut agree = 0;
            for (row, q_row) in obs.chunks(6).zip(q_burn.chunks(3)) {
                let q_host = host.q_values(row).unwrap().to_vec();
                for (a, b) in q_host.iter().zip(q_row) {
                    assert!((a - b).abs() < 1e-4, "{q_host:?} vs {q_row:?}");
                }
                agree += usize::from(host.greedy_action(row).unwrap() == argmax(q_row));
            }
            // Actions can differ only where two Q-values tie to within rounding.
            assert!(agree >= batch - 1, "{agree} of {batch} greedy actions agree");
        }
    }

    #[test]
    fn the_sparse_path_equals_the_dense_one() {
        let mut rng = seeded_rng(4);
        for (hidden, dueling) in [(vec![16], false), (vec![16, 8], true), (vec![], true), (vec![], false)] {
            let net = QNetworkConfig::new(50, 4).with_hidden(hidden).with_dueling(dueling);
            let mut host = net.init::<CpuBackend>(&cpu_device(), 3).to_host().unwrap();
            let indices = [0u32, 7, 8, 31, 49];
            let values: Vec<f32> = indices.iter().map(|_| uniform_f64(&mut rng, -1.0, 1.0) as f32).collect();
            let mut dense = vec![0.0f32; 50];
            indices.iter().zip(&values).for_each(|(&i, &v)| dense[i as usize] = v);
            let expected = host.q_values(&dense).unwrap().to_vec();
            let sparse = host.q_values_sparse(&indices, &values).unwrap();
            for (a, b) in sparse.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "{sparse:?} vs {expected:?}");
            }
        }
        let mut host = QNetworkConfig::new(4, 2).init::<CpuBackend>(&cpu_device(), 0).to_host().unwrap();
        assert!(host.q_values_sparse(&[4], &[1.0]).is_err());
        assert!(host.q_values_sparse(&[1, 2], &[1.0]).is_err());
    }

    #[test]
    fn wrong_observation_size_is_an_error() {
        let mut host = QNetworkConfig::new(4, 2).init::<CpuBackend>(&cpu_device(), 0).to_host().unwrap();
        let err = host.q_values(&[1.0, 2.0]).unwrap_err();
        assert_eq!(err.to_string(), "observation: expected 4 values, found 2");
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
