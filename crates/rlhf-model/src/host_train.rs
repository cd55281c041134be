//! Training an MLP Q-network in host memory: batched forward pass with a
//! tape, backward pass, and Adam with per-tensor gradient-norm clipping.
//!
//! A DQN gradient step on a small network (4-64-64-2, batch 64) is a few
//! hundred thousand multiply-adds; through burn most of its time went to
//! per-operation dispatch, allocation and element-wise kernels (measured with
//! `perf`: element-wise ops 18%, malloc/free 12%, copies 6%, the matrix
//! products 15%). Here the same arithmetic runs on plain `Vec<f32>`s, with
//! the matrix products through `ndarray` (`matrixmultiply`'s SIMD kernels,
//! chosen at run time) and every buffer reused across steps.
//!
//! The arithmetic is burn's: the same layer order, ReLU's gradient zero where
//! the output is zero, [`HostAdam`] is `burn::optim::Adam` with
//! `GradientClipping::Norm` (each parameter tensor clipped to the norm
//! separately), step for step, and its state converts to and from burn's
//! optimizer record, so checkpoints are the same files whichever path
//! trained them. Results agree with the burn path to float rounding (the
//! tests check it), not bit for bit: sums run in another order. Each path
//! repeats itself bit for bit.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::Linear;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{Adam, AdamState, AdaptiveMomentumState, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::ModelError;
use crate::host::{HostLinear, HostQNetwork, activate};
use crate::qnetwork::{Activation, QNetwork};

/// burn's record of an Adam optimizer over a [`QNetwork`]: Adam's moments keyed by parameter id.
pub type AdamRecord<B> = <OptimizerAdaptor<Adam, QNetwork<B>, B> as Optimizer<QNetwork<B>, B>>::Record;

/// An MLP's weights in host memory, for training: hidden layers, then the
/// output layer. Dueling heads are not supported (they train through burn).
#[derive(Debug, Clone, PartialEq)]
pub struct HostMlp {
    hidden: Vec<HostLinear>,
    head: HostLinear,
    activation: Activation,
}

/// The outputs of every layer for one batch, kept for the backward pass.
#[derive(Debug, Default, Clone)]
pub struct Tape {
    batch: usize,
    /// `outputs[l]`: layer `l`'s output, activated for hidden layers; the last is the Q-values.
    outputs: Vec<Vec<f32>>,
}

impl Tape {
    /// The last forward pass's Q-values, `[batch, n_actions]` row-major.
    pub fn q_values(&self) -> &[f32] {
        self.outputs.last().map_or(&[], Vec::as_slice)
    }
}

/// Gradients of every parameter tensor, in burn's visiting order: layer 0's
/// weight and bias, layer 1's, …, the output layer's. Frozen layers' stay empty.
#[derive(Debug, Default, Clone)]
pub struct MlpGradients {
    tensors: Vec<Vec<f32>>,
    /// The gradient flowing into the current layer's output, and the next one down.
    delta: [Vec<f32>; 2],
}

impl MlpGradients {
    /// The gradient of tensor `index` (see the type's docs for the order).
    pub fn tensor(&self, index: usize) -> &[f32] {
        self.tensors.get(index).map_or(&[], Vec::as_slice)
    }
}

fn shape_error(what: &'static str, expected: usize, found: usize) -> ModelError {
    ModelError::ShapeMismatch { what, expected, found }
}

/// A row-major `[rows, cols]` view of `data`.
fn view<'a>(data: &'a [f32], rows: usize, cols: usize, what: &'static str) -> Result<ArrayView2<'a, f32>, ModelError> {
    ArrayView2::from_shape((rows, cols), data).map_err(|_| shape_error(what, rows * cols, data.len()))
}

fn view_mut<'a>(
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    what: &'static str,
) -> Result<ArrayViewMut2<'a, f32>, ModelError> {
    let found = data.len();
    ArrayViewMut2::from_shape((rows, cols), data).map_err(|_| shape_error(what, rows * cols, found))
}

impl HostMlp {
    /// A copy of `network`'s weights. Errors on a dueling head.
    pub fn from_network<B: Backend>(network: &QNetwork<B>) -> Result<Self, ModelError> {
        let (hidden, head, value, activation) = network.host_layers()?;
        if value.is_some() {
            return Err(ModelError::InvalidConfig {
                field: "dueling",
                reason: "the host training path covers plain MLPs; a dueling head trains through burn".into(),
            });
        }
        Ok(Self { hidden, head, activation })
    }

    /// The same weights as a burn network on `device` (fresh parameter ids, every layer trainable).
    pub fn to_network<B: Backend>(&self, device: &B::Device) -> QNetwork<B> {
        let hidden = self.hidden.iter().map(|l| l.to_linear(device)).collect();
        QNetwork::from_parts(hidden, self.head.to_linear(device), None, self.activation)
    }

    /// The same weights as a [`HostQNetwork`], for acting.
    pub fn to_host_q_network(&self) -> HostQNetwork {
        HostQNetwork::new(self.hidden.clone(), self.head.clone(), None, self.activation)
    }

    /// The number of layers, the output layer included.
    pub fn n_layers(&self) -> usize {
        self.hidden.len() + 1
    }

    /// Layer `l`: a hidden layer below [`Self::n_layers`] − 1, the output layer at it (and beyond).
    pub fn layer(&self, l: usize) -> &HostLinear {
        self.hidden.get(l).unwrap_or(&self.head)
    }

    fn layers(&self) -> impl Iterator<Item = &HostLinear> {
        self.hidden.iter().chain([&self.head])
    }

    /// The input size.
    pub fn obs_dim(&self) -> usize {
        self.layer(0).d_in
    }

    /// The number of outputs.
    pub fn n_actions(&self) -> usize {
        self.head.d_out
    }

    /// Q-values of `batch` observations (`input`: `[batch, obs_dim]`
    /// row-major), every layer's output kept on `tape`.
    pub fn forward<'t>(&self, input: &[f32], batch: usize, tape: &'t mut Tape) -> Result<&'t [f32], ModelError> {
        if input.len() != batch * self.obs_dim() {
            return Err(shape_error("batch of observations", batch * self.obs_dim(), input.len()));
        }
        tape.batch = batch;
        tape.outputs.resize_with(self.n_layers(), Vec::new);
        let last = self.n_layers() - 1;
        for (l, layer) in self.layers().enumerate() {
            let (below, rest) = tape.outputs.split_at_mut(l);
            let x = below.last().map_or(input, Vec::as_slice);
            let out = &mut rest[0];
            out.clear();
            for _ in 0..batch {
                out.extend_from_slice(&layer.bias);
            }
            let x = view(x, batch, layer.d_in, "layer input")?;
            let w = view(&layer.weight, layer.d_in, layer.d_out, "layer weight")?;
            let mut y = view_mut(out, batch, layer.d_out, "layer output")?;
            general_mat_mul(1.0, &x, &w, 1.0, &mut y);
            if l < last {
                activate(self.activation, out);
            }
        }
        Ok(tape.q_values())
    }

    /// Gradients of a loss with respect to every parameter of layers
    /// `trainable_from..`, given `d_q`, the loss's gradient with respect to
    /// the Q-values of the forward pass on `tape` (which read `input`).
    pub fn backward(
        &self,
        input: &[f32],
        tape: &Tape,
        d_q: &[f32],
        trainable_from: usize,
        grads: &mut MlpGradients,
    ) -> Result<(), ModelError> {
        let batch = tape.batch;
        if tape.outputs.len() != self.n_layers() || input.len() != batch * self.obs_dim() {
            return Err(shape_error("tape of the forward pass", self.n_layers(), tape.outputs.len()));
        }
        if d_q.len() != batch * self.n_actions() {
            return Err(shape_error("gradient of the Q-values", batch * self.n_actions(), d_q.len()));
        }
        grads.tensors.resize_with(2 * self.n_layers(), Vec::new);
        let [delta, below] = &mut grads.delta;
        delta.clear();
        delta.extend_from_slice(d_q);
        for l in (0..self.n_layers()).rev() {
            let layer = self.layer(l);
            let (weights, biases) = grads.tensors[2 * l..].split_at_mut(1);
            if l < trainable_from {
                weights[0].clear();
                biases[0].clear();
                continue;
            }
            let x = if l == 0 { input } else { &tape.outputs[l - 1] };
            let d = view(delta, batch, layer.d_out, "layer output gradient")?;
            // dW = xᵀ · δ, db = Σ_rows δ.
            let d_weight = &mut weights[0];
            d_weight.resize(layer.d_in * layer.d_out, 0.0);
            general_mat_mul(
                1.0,
                &view(x, batch, layer.d_in, "layer input")?.t(),
                &d,
                0.0,
                &mut view_mut(d_weight, layer.d_in, layer.d_out, "weight gradient")?,
            );
            let d_bias = &mut biases[0];
            d_bias.clear();
            d_bias.resize(layer.d_out, 0.0);
            for row in delta.chunks_exact(layer.d_out) {
                d_bias.iter_mut().zip(row).for_each(|(g, r)| *g += r);
            }
            if l == trainable_from || l == 0 {
                break;
            }
            // δ below = (δ · Wᵀ) ⊙ activation'(x), x being the activated output below.
            below.clear();
            below.resize(batch * layer.d_in, 0.0);
            let w = view(&layer.weight, layer.d_in, layer.d_out, "layer weight")?;
            general_mat_mul(1.0, &d, &w.t(), 0.0, &mut view_mut(below, batch, layer.d_in, "input gradient")?);
            activation_backward(self.activation, x, below);
            std::mem::swap(delta, below);
        }
        for frozen in grads.tensors.iter_mut().take(2 * trainable_from) {
            frozen.clear();
        }
        Ok(())
    }

    /// Moves every weight towards `source`'s: `(1 - τ)·θ + τ·θ_source`
    /// (Polyak averaging of a target network, as the burn path computes it).
    pub fn blend_towards(&mut self, source: &HostMlp, tau: f64) -> Result<(), ModelError> {
        if self.n_layers() != source.n_layers() {
            return Err(shape_error("layers of the source network", self.n_layers(), source.n_layers()));
        }
        let (keep, take) = ((1.0 - tau) as f32, tau as f32);
        let theirs_all = source.layers();
        for (mine, theirs) in self.hidden.iter_mut().chain([&mut self.head]).zip(theirs_all) {
            if mine.weight.len() != theirs.weight.len() || mine.bias.len() != theirs.bias.len() {
                return Err(shape_error("weights of the source network", mine.weight.len(), theirs.weight.len()));
            }
            for (t, s) in mine.weight.iter_mut().zip(&theirs.weight).chain(mine.bias.iter_mut().zip(&theirs.bias)) {
                *t = *t * keep + *s * take;
            }
        }
        Ok(())
    }

    /// Every parameter tensor, in burn's visiting order, mutable.
    fn tensors_mut(&mut self) -> impl Iterator<Item = &mut Vec<f32>> {
        self.hidden.iter_mut().chain([&mut self.head]).flat_map(|l| [&mut l.weight, &mut l.bias])
    }
}

/// Multiplies `grad` by the activation's derivative, given its `output`.
fn activation_backward(activation: Activation, output: &[f32], grad: &mut [f32]) {
    match activation {
        // burn's ReLU passes the gradient where the output is positive.
        Activation::Relu => grad.iter_mut().zip(output).for_each(|(g, &y)| {
            if y <= 0.0 {
                *g = 0.0;
            }
        }),
        Activation::Tanh => grad.iter_mut().zip(output).for_each(|(g, &y)| *g *= 1.0 - y * y),
    }
}

/// Adam's settings, as `burn::optim::AdamConfig` names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostAdamConfig {
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the second moment's root.
    pub epsilon: f32,
    /// Each tensor's gradient is scaled to at most this L2 norm (burn's `GradientClipping::Norm`).
    pub clip_norm: Option<f32>,
}

/// One tensor's Adam state.
#[derive(Debug, Clone, PartialEq)]
struct Moments {
    time: usize,
    first: Vec<f32>,
    second: Vec<f32>,
}

/// Adam on a [`HostMlp`], step for step `burn::optim::Adam` (with its norm clipping).
#[derive(Debug, Clone, PartialEq)]
pub struct HostAdam {
    config: HostAdamConfig,
    /// Per parameter tensor; `None` until its first step (and for frozen ones).
    states: Vec<Option<Moments>>,
}

impl HostAdam {
    /// An optimizer with no state yet.
    pub fn new(config: HostAdamConfig) -> Self {
        Self { config, states: Vec::new() }
    }

    /// One step on every tensor of `network` with a gradient in `grads` (frozen ones have none).
    pub fn step(&mut self, network: &mut HostMlp, grads: &MlpGradients, learning_rate: f64) -> Result<(), ModelError> {
        let HostAdamConfig { beta_1, beta_2, epsilon, clip_norm } = self.config;
        let lr = learning_rate as f32;
        let n_tensors = 2 * network.n_layers();
        if grads.tensors.len() != n_tensors {
            return Err(shape_error("gradient tensors", n_tensors, grads.tensors.len()));
        }
        self.states.resize(n_tensors, None);
        for ((param, grad), state) in network.tensors_mut().zip(&grads.tensors).zip(&mut self.states) {
            if grad.is_empty() {
                continue;
            }
            if grad.len() != param.len() {
                return Err(shape_error("gradient", param.len(), grad.len()));
            }
            // burn scales the gradient by min(1, max_norm / (‖g‖ + MIN_POSITIVE)); 1 without clipping.
            let coef = match clip_norm {
                Some(max_norm) => (max_norm / (l2_norm(grad) + f32::MIN_POSITIVE)).min(1.0),
                None => 1.0,
            };
            let moments = state.get_or_insert_with(|| Moments {
                time: 0,
                first: vec![0.0; param.len()],
                second: vec![0.0; param.len()],
            });
            moments.time += 1;
            let time = i32::try_from(moments.time).unwrap_or(i32::MAX);
            let correction_2 = (1.0 - beta_2.powi(time)).sqrt();
            let factor = correction_2 / (1.0 - beta_1.powi(time));
            let eps = epsilon * correction_2;
            for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(&mut moments.first).zip(&mut moments.second) {
                let g = g * coef;
                *m = *m * beta_1 + g * (1.0 - beta_1);
                *v = *v * beta_2 + g * g * (1.0 - beta_2);
                *p -= (*m * factor) / (v.sqrt() + eps) * lr;
            }
        }
        Ok(())
    }

    /// burn's optimizer record of this state, keyed by `network`'s parameter
    /// ids (`network` holding the same weights in the same order, as
    /// [`HostMlp::to_network`] builds it): what
    /// `OptimizerAdaptor::<Adam, QNetwork<B>, B>::load_record` takes.
    pub fn to_record<B: AutodiffBackend>(&self, network: &QNetwork<B>) -> AdamRecord<B> {
        let mut ids = ParamIds::default();
        network.visit(&mut ids);
        let mut record = AdamRecord::<B>::default();
        let Some(device) = ids.device else { return record };
        for ((id, shape), state) in ids.params.into_iter().zip(&self.states) {
            let Some(moments) = state else { continue };
            let tensor = |values: &[f32]| TensorData::new(values.to_vec(), shape.clone());
            let entry = match shape.len() {
                1 => AdaptorRecord::from_state::<1>(AdamState::new(AdaptiveMomentumState::new(
                    moments.time,
                    Tensor::from_data(tensor(&moments.first), &device),
                    Tensor::from_data(tensor(&moments.second), &device),
                ))),
                _ => AdaptorRecord::from_state::<2>(AdamState::new(AdaptiveMomentumState::new(
                    moments.time,
                    Tensor::from_data(tensor(&moments.first), &device),
                    Tensor::from_data(tensor(&moments.second), &device),
                ))),
            };
            record.insert(id, entry);
        }
        record
    }

    /// The state in burn's optimizer `record` of `network` (whose parameter
    /// ids key it). A tensor without an entry has had no step yet.
    pub fn from_record<B: AutodiffBackend>(
        config: HostAdamConfig,
        mut record: AdamRecord<B>,
        network: &QNetwork<B>,
    ) -> Result<Self, ModelError> {
        let mut ids = ParamIds::default();
        network.visit(&mut ids);
        let mut states = Vec::with_capacity(ids.params.len());
        for (id, shape) in ids.params {
            let Some(entry) = record.remove(&id) else {
                states.push(None);
                continue;
            };
            let read = |data: TensorData| {
                data.to_vec::<f32>()
                    .map_err(|e| ModelError::TensorRead { what: "Adam's moments".into(), message: format!("{e:?}") })
            };
            let (time, first, second) = match shape.len() {
                1 => {
                    let m = entry.into_state::<1>().momentum;
                    (m.time, read(m.moment_1.into_data())?, read(m.moment_2.into_data())?)
                }
                _ => {
                    let m = entry.into_state::<2>().momentum;
                    (m.time, read(m.moment_1.into_data())?, read(m.moment_2.into_data())?)
                }
            };
            let expected = shape.iter().product();
            if first.len() != expected || second.len() != expected {
                return Err(shape_error("Adam's moments", expected, first.len().min(second.len())));
            }
            states.push(Some(Moments { time, first, second }));
        }
        Ok(Self { config, states })
    }
}

/// The L2 norm, summed in eight lanes: one running sum is a serial chain
/// of additions, eight let the compiler keep them in SIMD registers.
fn l2_norm(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(lane, x)| *lane += x * x);
    }
    (lanes.iter().sum::<f32>() + rest).sqrt()
}

/// Every float parameter's id and shape, in visiting order, and their device.
struct ParamIds<B: Backend> {
    params: Vec<(ParamId, Vec<usize>)>,
    device: Option<B::Device>,
}

impl<B: Backend> Default for ParamIds<B> {
    fn default() -> Self {
        Self { params: Vec::new(), device: None }
    }
}

impl<B: Backend> ModuleVisitor<B> for ParamIds<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        self.device.get_or_insert_with(|| value.device());
        self.params.push((param.id, value.dims().to_vec()));
    }
}

impl HostLinear {
    /// The same layer in burn on `device`.
    pub(crate) fn to_linear<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        crate::qnetwork::linear_from_values(self.weight.clone(), self.bias.clone(), self.d_in, self.d_out, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QNetworkConfig;
    use crate::backend::{AutodiffCpu, cpu_device};
    use burn::module::AutodiffModule;
    use burn::optim::grad_clipping::GradientClippingConfig;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use rlhf_env::rng::{seeded_rng, uniform_f64};

    type B = AutodiffCpu;

    fn random(n: usize, seed: u64, scale: f64) -> Vec<f32> {
        let mut rng = seeded_rng(seed);
        (0..n).map(|_| uniform_f64(&mut rng, -scale, scale) as f32).collect()
    }

    /// Every parameter's values, in visiting order.
    fn params(network: &QNetwork<B>) -> Vec<Vec<f32>> {
        struct Values(Vec<Vec<f32>>);
        impl ModuleVisitor<B> for Values {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                self.0.push(param.val().into_data().to_vec::<f32>().unwrap());
            }
        }
        let mut values = Values(Vec::new());
        network.visit(&mut values);
        values.0
    }

    fn host_params(mlp: &HostMlp) -> Vec<Vec<f32>> {
        mlp.layers().flat_map(|l| [l.weight.clone(), l.bias.clone()]).collect()
    }

    fn assert_close(a: &[f32], b: &[f32], tolerance: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tolerance * (1.0 + y.abs()), "{what}[{i}]: {x} against {y}");
        }
    }

    /// burn's gradients of `Σ Q ⊙ c` (so that dL/dQ = c) for every parameter.
    fn burn_gradients(network: &QNetwork<B>, obs: &[f32], batch: usize, c: &[f32]) -> Vec<Option<Vec<f32>>> {
        let dims = [batch, network.obs_dim()];
        let q = network.forward(Tensor::from_data(TensorData::new(obs.to_vec(), dims), &cpu_device()));
        let c = Tensor::<B, 2>::from_data(TensorData::new(c.to_vec(), [batch, network.n_actions()]), &cpu_device());
        let grads = (q * c).sum().backward();
        struct Grads<'a>(&'a <B as AutodiffBackend>::Gradients, Vec<Option<Vec<f32>>>);
        impl ModuleVisitor<B> for Grads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let grad = param.val().grad(self.0).map(|g| g.into_data().to_vec::<f32>().unwrap());
                self.1.push(grad);
            }
        }
        let mut visitor = Grads(&grads, Vec::new());
        network.visit(&mut visitor);
        visitor.1
    }

    #[test]
    fn forward_and_gradients_agree_with_burn() {
        let batch = 17;
        for (activation, frozen) in [(Activation::Relu, 0), (Activation::Tanh, 0), (Activation::Relu, 1)] {
            let config = QNetworkConfig::new(5, 3).with_hidden(vec![16, 8]).with_activation(activation);
            let network = config.init::<B>(&cpu_device(), 3).freeze_hidden(frozen);
            let mlp = HostMlp::from_network(&network).unwrap();
            let obs = random(batch * 5, 1, 2.0);
            let c = random(batch * 3, 2, 1.0);

            let mut tape = Tape::default();
            let q = mlp.forward(&obs, batch, &mut tape).unwrap().to_vec();
            let q_burn = network
                .valid()
                .forward(Tensor::from_data(TensorData::new(obs.clone(), [batch, 5]), &cpu_device()))
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            assert_close(&q, &q_burn, 1e-5, "Q");

            let mut grads = MlpGradients::default();
            mlp.backward(&obs, &tape, &c, frozen, &mut grads).unwrap();
            for (i, expected) in burn_gradients(&network, &obs, batch, &c).into_iter().enumerate() {
                match expected {
                    Some(expected) => assert_close(grads.tensor(i), &expected, 1e-5, &format!("gradient {i}")),
                    None => assert!(grads.tensor(i).is_empty(), "frozen tensor {i} has no gradient"),
                }
            }
        }
    }

    #[test]
    fn the_lane_norm_is_the_l2_norm() {
        assert_eq!(l2_norm(&[3.0, 4.0]), 5.0);
        assert_eq!(l2_norm(&[]), 0.0);
        // 8 lanes plus a remainder of 3: √(11 · 4) = 2√11.
        assert!((l2_norm(&[2.0; 11]) - 2.0 * 11f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn a_first_adam_step_moves_each_weight_by_the_learning_rate_against_its_gradient() {
        // At t = 1, m̂ = g and v̂ = g², so the step is lr · g / (|g| + ε): lr · sign(g) for |g| ≫ ε.
        let network = QNetworkConfig::new(2, 1).with_hidden(vec![]).init::<B>(&cpu_device(), 0);
        let mut mlp = HostMlp::from_network(&network).unwrap();
        let before = host_params(&mlp);
        let grads = MlpGradients { tensors: vec![vec![0.5, -2.0], vec![0.0]], delta: Default::default() };
        let config = HostAdamConfig { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, clip_norm: None };
        HostAdam::new(config).step(&mut mlp, &grads, 0.01).unwrap();
        let after = host_params(&mlp);
        assert!((after[0][0] - (before[0][0] - 0.01)).abs() < 1e-6);
        assert!((after[0][1] - (before[0][1] + 0.01)).abs() < 1e-6);
        assert_eq!(after[1], before[1], "a zero gradient leaves the bias");
    }

    #[test]
    fn adam_with_clipping_agrees_with_burn_and_its_state_round_trips_through_burns_record() {
        let batch = 32;
        let config = QNetworkConfig::new(4, 2).with_hidden(vec![16, 16]);
        for frozen in [0, 1] {
            let mut network = config.init::<B>(&cpu_device(), 7).freeze_hidden(frozen);
            let mut mlp = HostMlp::from_network(&network).unwrap();
            let mut optimizer = AdamConfig::new()
                .with_epsilon(1e-8)
                .with_grad_clipping(Some(GradientClippingConfig::Norm(0.5)))
                .init::<B, QNetwork<B>>();
            let host_config = HostAdamConfig { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, clip_norm: Some(0.5) };
            let mut adam = HostAdam::new(host_config);
            let (mut tape, mut grads) = (Tape::default(), MlpGradients::default());
            for step in 0..30 {
                let obs = random(batch * 4, 100 + step, 1.0);
                // Large enough that clipping is active on some tensors.
                let c = random(batch * 2, 200 + step, 3.0);
                mlp.forward(&obs, batch, &mut tape).unwrap();
                mlp.backward(&obs, &tape, &c, frozen, &mut grads).unwrap();
                adam.step(&mut mlp, &grads, 1e-3).unwrap();

                let dims = [batch, 4];
                let q = network.forward(Tensor::from_data(TensorData::new(obs, dims), &cpu_device()));
                let c = Tensor::<B, 2>::from_data(TensorData::new(c, [batch, 2]), &cpu_device());
                let burn_grads = GradientsParams::from_grads((q * c).sum().backward(), &network);
                network = optimizer.step(1e-3, network, burn_grads);
            }
            for (i, (h, b)) in host_params(&mlp).iter().zip(params(&network)).enumerate() {
                assert_close(h, &b, 1e-5, &format!("parameter {i} after 30 steps"));
            }

            // The state converts to burn's record and back unchanged.
            let rebuilt = mlp.to_network::<B>(&cpu_device()).freeze_hidden(frozen);
            let record = adam.to_record(&rebuilt);
            assert_eq!(record.len(), 6 - 2 * frozen, "one entry per trainable tensor");
            let back = HostAdam::from_record(host_config, record, &rebuilt).unwrap();
            assert_eq!(back, adam);
            // burn continues from it exactly where the host left off: one more step on each side agrees.
            let record = adam.to_record(&rebuilt);
            let mut burn_optimizer = AdamConfig::new()
                .with_epsilon(1e-8)
                .with_grad_clipping(Some(GradientClippingConfig::Norm(0.5)))
                .init::<B, QNetwork<B>>()
                .load_record(record);
            let obs = random(batch * 4, 999, 1.0);
            let c = random(batch * 2, 998, 3.0);
            mlp.forward(&obs, batch, &mut tape).unwrap();
            mlp.backward(&obs, &tape, &c, frozen, &mut grads).unwrap();
            adam.step(&mut mlp, &grads, 1e-3).unwrap();
            let q = rebuilt.forward(Tensor::from_data(TensorData::new(obs, [batch, 4]), &cpu_device()));
            let c = Tensor::<B, 2>::from_data(TensorData::new(c, [batch, 2]), &cpu_device());
            let burn_grads = GradientsParams::from_grads((q * c).sum().backward(), &rebuilt);
            let stepped = burn_optimizer.step(1e-3, rebuilt, burn_grads);
            for (i, (h, b)) in host_params(&mlp).iter().zip(params(&stepped)).enumerate() {
                assert_close(h, &b, 1e-5, &format!("parameter {i} after burn's step from the host's state"));
            }
        }
    }

    #[test]
    fn blending_and_conversions_keep_the_weights() {
        let network = QNetworkConfig::new(3, 2).with_hidden(vec![4]).init::<B>(&cpu_device(), 1);
        let other = QNetworkConfig::new(3, 2).with_hidden(vec![4]).init::<B>(&cpu_device(), 2);
        let mlp = HostMlp::from_network(&network).unwrap();
        assert_eq!(
            host_params(&HostMlp::from_network(&mlp.to_network::<B>(&cpu_device())).unwrap()),
            host_params(&mlp)
        );
        assert_eq!(mlp.to_host_q_network(), network.to_host().unwrap());
        let source = HostMlp::from_network(&other).unwrap();
        let mut blended = mlp.clone();
        blended.blend_towards(&source, 0.25).unwrap();
        for ((b, m), s) in host_params(&blended).iter().zip(host_params(&mlp)).zip(host_params(&source)) {
            let expected: Vec<f32> = m.iter().zip(&s).map(|(m, s)| 0.75 * m + 0.25 * s).collect();
            assert_close(b, &expected, 1e-6, "blend");
        }
        let dueling = QNetworkConfig::new(3, 2).with_dueling(true).init::<B>(&cpu_device(), 1);
        assert!(HostMlp::from_network(&dueling).is_err());
        let mut tape = Tape::default();
        assert!(mlp.forward(&[1.0; 5], 2, &mut tape).is_err(), "a batch of the wrong size is an error");
    }
}
