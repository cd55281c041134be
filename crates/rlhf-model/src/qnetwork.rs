//! The Q-network: observations in, one Q-value per action out.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_f64};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::host::{HostLinear, HostQNetwork};

/// The nonlinearity between hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)` (Stable-Baselines3's default for DQN).
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    fn apply<B: Backend>(self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Activation::Relu => activation::relu(x),
            Activation::Tanh => activation::tanh(x),
        }
    }
}

/// Configuration of a [`QNetwork`].
#[derive(Config, Debug, PartialEq)]
pub struct QNetworkConfig {
    /// Length of the (flat) observation.
    pub obs_dim: usize,
    /// Number of discrete actions: the output size.
    pub n_actions: usize,
    /// Widths of the hidden layers, input side first.
    #[config(default = "vec![64, 64]")]
    pub hidden: Vec<usize>,
    /// Nonlinearity after each hidden layer.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Dueling head (Wang et al. 2016): `Q = V + A - mean(A)`.
    #[config(default = false)]
    pub dueling: bool,
}

/// A `d_in → d_out` linear layer whose weights, then biases, are drawn
/// uniform in `±1/sqrt(d_in)` from `rng` (PyTorch's `nn.Linear` default):
/// the same generator state gives the same layer on every backend.
pub fn uniform_linear<B: Backend>(d_in: usize, d_out: usize, rng: &mut EnvRng, device: &B::Device) -> Linear<B> {
    let bound = 1.0 / (d_in.max(1) as f64).sqrt();
    let mut draw = |n: usize| (0..n).map(|_| uniform_f64(rng, -bound, bound) as f32).collect::<Vec<_>>();
    let weight = draw(d_in * d_out);
    let bias = draw(d_out);
    linear_from_values(weight, bias, d_in, d_out, device)
}

/// A `d_in → d_out` linear layer with these weights (row-major `[d_in, d_out]`) and biases.
pub(crate) fn linear_from_values<B: Backend>(
    weight: Vec<f32>,
    bias: Vec<f32>,
    d_in: usize,
    d_out: usize,
    device: &B::Device,
) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(weight, [d_in, d_out]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [d_out]), device))),
    }
}

impl QNetworkConfig {
    /// Builds the network on `device`, its weights drawn from `seed`.
    ///
    /// Every weight and bias of a layer with `fan_in` inputs is uniform in
    /// `±1/sqrt(fan_in)` (PyTorch's default for `nn.Linear`, which
    /// Stable-Baselines3 uses), drawn in a fixed order from the project's
    /// portable generator: the same seed gives the same network on every
    /// backend and machine.
    pub fn init<B: Backend>(&self, device: &B::Device, seed: u64) -> QNetwork<B> {
        let mut rng = seeded_rng(seed);
        let mut linear = |d_in: usize, d_out: usize| uniform_linear(d_in, d_out, &mut rng, device);
        let mut widths = vec![self.obs_dim];
        widths.extend(&self.hidden);
        let hidden = widths.windows(2).map(|w| linear(w[0], w[1])).collect();
        let last = *widths.last().unwrap_or(&self.obs_dim);
        let head = linear(last, self.n_actions);
        let value = self.dueling.then(|| linear(last, 1));
        QNetwork { hidden, head, value, activation: self.activation }
    }
}

/// A network's layers in host memory: hidden, head, dueling value head, activation.
pub(crate) type HostParts = (Vec<HostLinear>, HostLinear, Option<HostLinear>, Activation);

/// An MLP Q-network, generic over the burn backend.
#[derive(Module, Debug)]
pub struct QNetwork<B: Backend> {
    hidden: Vec<Linear<B>>,
    /// Q-values, or advantages with a dueling head.
    head: Linear<B>,
    /// State value of the dueling head.
    value: Option<Linear<B>>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> QNetwork<B> {
    /// Q-values of a batch of observations.
    ///
    /// `obs: [batch, obs_dim]` → `[batch, n_actions]`.
    pub fn forward(&self, obs: Tensor<B, 2>) -> Tensor<B, 2> {
        let features = self.hidden.iter().fold(obs, |x, layer| self.activation.apply(layer.forward(x)));
        let q = self.head.forward(features.clone());
        match &self.value {
            None => q,
            Some(value) => {
                let advantage_mean = q.clone().mean_dim(1);
                value.forward(features) + q - advantage_mean
            }
        }
    }

    /// The network with its first `layers` hidden layers frozen (no
    /// gradients, so optimisers leave them unchanged), for fine-tuning.
    pub fn freeze_hidden(mut self, layers: usize) -> Self {
        for layer in self.hidden.iter_mut().take(layers) {
            *layer = layer.clone().no_grad();
        }
        self
    }

    /// The same network with a new action set: output `j` of the result is
    /// output `keep[j]` of this one (its weights and bias copied) or, where
    /// `keep[j]` is `None`, a fresh output drawn from `seed` as
    /// [`QNetworkConfig::init`] draws them. Hidden layers (and a dueling
    /// value head) are kept; without a dueling head the kept outputs give
    /// exactly the old Q-values (with one, the advantage mean changes). This is how a network fine-tunes to a new domain
    /// while keeping what it knew of intents both domains share. Errors when
    /// `keep` names an output this network does not have.
    pub fn with_actions(&self, keep: &[Option<usize>], seed: u64) -> Result<Self, ModelError> {
        let n_old = self.n_actions();
        if let Some(bad) = keep.iter().flatten().find(|&&k| k >= n_old) {
            return Err(ModelError::ShapeMismatch { what: "kept action index bound", expected: n_old, found: bad + 1 });
        }
        let [d_in, _] = self.head.weight.dims();
        let device = self.head.weight.device();
        let read = |data: TensorData, what: &str| {
            data.to_vec::<f32>()
                .map_err(|e| ModelError::TensorRead { what: what.to_owned(), message: format!("{e:?}") })
        };
        let old_weight = read(self.head.weight.val().into_data(), "head.weight")?;
        let old_bias = match &self.head.bias {
            Some(bias) => read(bias.val().into_data(), "head.bias")?,
            None => vec![0.0; n_old],
        };
        let mut rng = seeded_rng(seed);
        let bound = 1.0 / (d_in.max(1) as f64).sqrt();
        let mut fresh = || uniform_f64(&mut rng, -bound, bound) as f32;
        let n_new = keep.len();
        let mut weight = vec![0.0f32; d_in * n_new];
        let mut bias = vec![0.0f32; n_new];
        for (j, kept) in keep.iter().enumerate() {
            for i in 0..d_in {
                weight[i * n_new + j] = match kept {
                    Some(k) => old_weight[i * n_old + k],
                    None => fresh(),
                };
            }
            bias[j] = match kept {
                Some(k) => old_bias[*k],
                None => fresh(),
            };
        }
        let head = linear_from_values(weight, bias, d_in, n_new, &device);
        Ok(Self { hidden: self.hidden.clone(), head, value: self.value.clone(), activation: self.activation })
    }

    /// The same network with output `action` computing `weight · h + bias`
    /// from the last hidden activations `h` (as
    /// [`HostQNetwork::hidden_features_sparse`] gives them); every other
    /// output is unchanged. This is how a new intent is *imprinted* from
    /// its first examples instead of starting at random. Errors on a dueling
    /// head (its outputs are not separate), a bad index or a weight vector
    /// of the wrong size.
    pub fn with_output(&self, action: usize, weight: &[f32], bias: f32) -> Result<Self, ModelError> {
        if self.value.is_some() {
            return Err(ModelError::InvalidConfig {
                field: "dueling",
                reason: "setting one output of a dueling head changes them all".into(),
            });
        }
        let [d_in, n] = self.head.weight.dims();
        if action >= n {
            return Err(ModelError::ShapeMismatch { what: "output index bound", expected: n, found: action + 1 });
        }
        if weight.len() != d_in {
            return Err(ModelError::ShapeMismatch { what: "output weights", expected: d_in, found: weight.len() });
        }
        let read = |data: TensorData, what: &str| {
            data.to_vec::<f32>()
                .map_err(|e| ModelError::TensorRead { what: what.to_owned(), message: format!("{e:?}") })
        };
        let mut weights = read(self.head.weight.val().into_data(), "head.weight")?;
        let mut biases = match &self.head.bias {
            Some(bias) => read(bias.val().into_data(), "head.bias")?,
            None => vec![0.0; n],
        };
        for (i, w) in weight.iter().enumerate() {
            weights[i * n + action] = *w;
        }
        biases[action] = bias;
        let device = self.head.weight.device();
        let head = linear_from_values(weights, biases, d_in, n, &device);
        Ok(Self { hidden: self.hidden.clone(), head, value: None, activation: self.activation })
    }

    /// The configuration that builds a network of this shape.
    pub fn config(&self) -> QNetworkConfig {
        QNetworkConfig::new(self.obs_dim(), self.n_actions())
            .with_hidden(self.hidden.iter().map(|l| l.weight.dims()[1]).collect())
            .with_activation(self.activation)
            .with_dueling(self.value.is_some())
    }

    /// The number of hidden layers.
    pub fn hidden_layers(&self) -> usize {
        self.hidden.len()
    }

    /// The input size.
    pub fn obs_dim(&self) -> usize {
        let first = self.hidden.first().unwrap_or(&self.head);
        first.weight.dims()[0]
    }

    /// The number of actions.
    pub fn n_actions(&self) -> usize {
        self.head.weight.dims()[1]
    }

    /// Shapes of every parameter tensor, in a fixed order.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        let linears = self.hidden.iter().chain([&self.head]).chain(self.value.as_ref());
        linears.flat_map(|l| linear_shapes(&l.weight, l.bias.as_ref())).collect()
    }

    /// Shapes of every tensor of a record, in the order of [`Self::param_shapes`].
    pub(crate) fn record_shapes(record: &QNetworkRecord<B>) -> Vec<Vec<usize>> {
        let linears = record.hidden.iter().chain([&record.head]).chain(record.value.as_ref());
        linears.flat_map(|l| linear_shapes(&l.weight, l.bias.as_ref())).collect()
    }

    /// A host copy of the weights, for fast single-observation inference.
    pub fn to_host(&self) -> Result<HostQNetwork, ModelError> {
        let (hidden, head, value, activation) = self.host_layers()?;
        Ok(HostQNetwork::new(hidden, head, value, activation))
    }

    /// Host copies of the hidden layers, the head and the dueling value head, and the activation.
    pub(crate) fn host_layers(&self) -> Result<HostParts, ModelError> {
        let read = |layer: &Linear<B>, name: String| HostLinear::from_linear(layer, &name);
        let hidden =
            self.hidden.iter().enumerate().map(|(i, l)| read(l, format!("hidden.{i}"))).collect::<Result<_, _>>()?;
        let head = read(&self.head, "head".into())?;
        let value = self.value.as_ref().map(|l| read(l, "value".into())).transpose()?;
        Ok((hidden, head, value, self.activation))
    }

    /// A network of these layers.
    pub(crate) fn from_parts(
        hidden: Vec<Linear<B>>,
        head: Linear<B>,
        value: Option<Linear<B>>,
        activation: Activation,
    ) -> Self {
        Self { hidden, head, value, activation }
    }
}

fn linear_shapes<B: Backend>(weight: &Param<Tensor<B, 2>>, bias: Option<&Param<Tensor<B, 1>>>) -> Vec<Vec<usize>> {
    let mut shapes = vec![weight.val().dims().to_vec()];
    shapes.extend(bias.map(|b| b.val().dims().to_vec()));
    shapes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CpuBackend, cpu_device};

    type B = CpuBackend;

    fn q_of(net: &QNetwork<B>, obs: &[f32]) -> Vec<f32> {
        let input = Tensor::<B, 2>::from_data(TensorData::new(obs.to_vec(), [1, obs.len()]), &cpu_device());
        net.forward(input).into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn a_set_output_computes_its_weights_on_the_hidden_features_and_leaves_the_others() {
        let net = QNetworkConfig::new(4, 3).with_hidden(vec![8]).init::<B>(&cpu_device(), 5);
        let obs = [0.5, -0.25, 1.0, 0.0];
        let mut host = net.to_host().unwrap();
        let features = host.hidden_features_sparse(&[0, 1, 2], &[0.5, -0.25, 1.0]).unwrap().to_vec();
        assert_eq!(features.len(), 8);
        let weight: Vec<f32> = (0..8).map(|i| i as f32 * 0.1 - 0.3).collect();
        let changed = net.with_output(2, &weight, 0.25).unwrap();
        let (before, after) = (q_of(&net, &obs), q_of(&changed, &obs));
        let expected = 0.25 + weight.iter().zip(&features).map(|(w, h)| w * h).sum::<f32>();
        assert!((after[2] - expected).abs() < 1e-5, "{after:?} against {expected}");
        assert_eq!(&after[..2], &before[..2], "the other outputs are untouched");
        assert!(net.with_output(3, &weight, 0.0).is_err());
        assert!(net.with_output(0, &weight[..4], 0.0).is_err());
        let dueling = QNetworkConfig::new(4, 3).with_hidden(vec![8]).with_dueling(true).init::<B>(&cpu_device(), 5);
        assert!(dueling.with_output(0, &weight, 0.0).is_err());
    }

    #[test]
    fn a_new_action_set_keeps_the_shared_outputs_exactly() {
        let net = QNetworkConfig::new(5, 4).with_hidden(vec![8]).init::<B>(&cpu_device(), 1);
        // New actions: old 2, a fresh one, old 0.
        let remapped = net.with_actions(&[Some(2), None, Some(0)], 9).unwrap();
        assert_eq!(remapped.n_actions(), 3);
        for obs in [[0.1f32, -0.3, 0.5, 1.0, 0.0], [1.0, 1.0, -1.0, 0.2, 0.7]] {
            let (old, new) = (q_of(&net, &obs), q_of(&remapped, &obs));
            assert_eq!((new[0], new[2]), (old[2], old[0]));
        }
        assert!(net.with_actions(&[Some(4)], 0).is_err());
    }

    #[test]
    fn a_one_layer_network_computes_by_hand() {
        // No hidden layers: Q = obs · W + b. Set W and b by hand.
        let mut net = QNetworkConfig::new(2, 2).with_hidden(vec![]).init::<B>(&cpu_device(), 0);
        let device = cpu_device();
        net.head.weight =
            Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]), &device));
        net.head.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.5f32, -0.5], [2]), &device)));
        // [1, -1] · [[1, 2], [3, 4]] = [-2, -2]; plus bias.
        assert_eq!(q_of(&net, &[1.0, -1.0]), vec![-1.5, -2.5]);
    }

    #[test]
    fn relu_hidden_layer_by_hand() {
        let device = cpu_device();
        let mut net = QNetworkConfig::new(1, 1).with_hidden(vec![2]).init::<B>(&device, 0);
        let tensor2 =
            |v: Vec<f32>, shape: [usize; 2]| Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), &device));
        let tensor1 =
            |v: Vec<f32>| Param::from_tensor(Tensor::from_data(TensorData::new(v.clone(), [v.len()]), &device));
        net.hidden[0].weight = tensor2(vec![1.0, -1.0], [1, 2]);
        net.hidden[0].bias = Some(tensor1(vec![0.0, 0.0]));
        net.head.weight = tensor2(vec![2.0, 3.0], [2, 1]);
        net.head.bias = Some(tensor1(vec![1.0]));
        // x = 2: hidden relu([2, -2]) = [2, 0]; Q = 2·2 + 0·3 + 1 = 5.
        assert_eq!(q_of(&net, &[2.0]), vec![5.0]);
        // x = -1: hidden relu([-1, 1]) = [0, 1]; Q = 3 + 1 = 4.
        assert_eq!(q_of(&net, &[-1.0]), vec![4.0]);
    }

    #[test]
    fn dueling_head_is_value_plus_centred_advantage() {
        let net = QNetworkConfig::new(3, 4).with_dueling(true).init::<B>(&cpu_device(), 1);
        let obs = [0.3, -0.2, 0.9];
        let q = q_of(&net, &obs);
        // Recompute V and A from the same layers without the combination.
        let plain = QNetwork::<B> { value: None, ..net.clone() };
        let advantage = q_of(&plain, &obs);
        let mean = advantage.iter().sum::<f32>() / 4.0;
        let value = q[0] - (advantage[0] - mean);
        for (qa, a) in q.iter().zip(&advantage) {
            assert!((qa - (value + a - mean)).abs() < 1e-5);
        }
    }

    #[test]
    fn frozen_layers_do_not_move_under_an_optimizer_step() {
        use burn::backend::Autodiff;
        use burn::optim::{AdamConfig, GradientsParams, Optimizer};
        type AD = Autodiff<B>;
        let device = cpu_device();
        let net = QNetworkConfig::new(3, 2).with_hidden(vec![8, 8]).init::<AD>(&device, 2).freeze_hidden(1);
        let weights = |net: &QNetwork<AD>, i: usize| net.hidden[i].weight.val().into_data().to_vec::<f32>().unwrap();
        let (first, second) = (weights(&net, 0), weights(&net, 1));
        let obs = Tensor::<AD, 2>::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 1.0, 0.0, -0.5], [2, 3]), &device);
        let loss = net.forward(obs).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let mut optimizer = AdamConfig::new().init::<AD, QNetwork<AD>>();
        let net = optimizer.step(0.01, net, grads);
        assert_eq!(weights(&net, 0), first, "frozen layer unchanged");
        assert_ne!(weights(&net, 1), second, "trainable layer moved");
    }

    #[cfg(all(feature = "flex", feature = "ndarray"))]
    #[test]
    fn flex_and_ndarray_compute_the_same_network() {
        use crate::backend::{FlexBackend, NdArrayBackend};
        let config = QNetworkConfig::new(4, 3).with_hidden(vec![32, 32]).with_dueling(true);
        let flex = config.init::<FlexBackend>(&Default::default(), 11);
        let ndarray = config.init::<NdArrayBackend>(&Default::default(), 11);
        let obs: Vec<f32> = (0..64 * 4).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let run_flex = flex.forward(Tensor::from_data(TensorData::new(obs.clone(), [64, 4]), &Default::default()));
        let run_ndarray = ndarray.forward(Tensor::from_data(TensorData::new(obs, [64, 4]), &Default::default()));
        let (a, b) = (run_flex.into_data().to_vec::<f32>().unwrap(), run_ndarray.into_data().to_vec::<f32>().unwrap());
        assert_eq!(a.len(), 64 * 3);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn same_seed_same_weights_and_shapes() {
        let config = QNetworkConfig::new(4, 2).with_hidden(vec![8, 8]);
        let a = config.init::<B>(&cpu_device(), 3);
        let b = config.init::<B>(&cpu_device(), 3);
        let c = config.init::<B>(&cpu_device(), 4);
        let obs = [0.1, 0.2, 0.3, 0.4];
        assert_eq!(q_of(&a, &obs), q_of(&b, &obs));
        assert_ne!(q_of(&a, &obs), q_of(&c, &obs));
        assert_eq!((a.obs_dim(), a.n_actions()), (4, 2));
        // Bounds: first layer fan-in 4, so |w| <= 1/2.
        let w = a.hidden[0].weight.val().into_data().to_vec::<f32>().unwrap();
        assert!(w.iter().all(|v| v.abs() <= 0.5) && w.iter().any(|v| v.abs() > 0.4));
    }
}
