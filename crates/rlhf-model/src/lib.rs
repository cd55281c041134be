//! The model layer: Q-networks in burn, generic over the backend.
//!
//! - [`QNetworkConfig`] builds a [`QNetwork<B>`]: an MLP from observations to
//!   one Q-value per action, optionally with a dueling head. Weights are drawn
//!   from a seed you pass, with the project's own portable generator, so the
//!   same seed gives the same network on every backend.
//! - [`HostQNetwork`]: a plain-`Vec<f32>` copy of a network's weights that
//!   computes Q-values and greedy actions for one observation in about a
//!   microsecond, for the hot path of acting in an environment, where burn's
//!   per-call overhead would dominate.
//! - [`text`]: hashed character n-gram features of any text ([`text::HashedNgrams`]),
//!   the voice assistant's input.
//! - [`checkpoint`]: save and load a network with its metadata, atomically
//!   and with every mismatch or corruption reported as a typed error.
//! - [`quant`]: int8 block-quantised linear layers ([`quant::QuantizedLinear`],
//!   from the sentence encoder's 4-bit blocks or from f32 weights) with
//!   run-time-dispatched AVX2 / AVX-512 VNNI kernels, and a vectorised exact
//!   GELU ([`quant::gelu_in_place`]): a transformer's products on one core.
//! - [`subnormals`]: flushing subnormal floats to zero on every thread that
//!   computes, which keeps long training runs at full speed on x86.
//! - [`backend`]: the concrete backends, each behind a cargo feature
//!   (`flex`, the default; `ndarray`; `wgpu`).
//!
//! ```
//! use rlhf_model::{QNetworkConfig, backend::{CpuBackend, cpu_device}};
//!
//! let net = QNetworkConfig::new(4, 2).with_hidden(vec![32, 32]).init::<CpuBackend>(&cpu_device(), 7);
//! let mut host = net.to_host()?;
//! let action = host.greedy_action(&[0.0, 0.1, -0.02, 0.3])?;
//! assert!(action < 2);
//! # Ok::<(), rlhf_model::ModelError>(())
//! ```
//!
//! Architecture invariant: this crate depends on `rlhf-env` and burn, never
//! on `rlhf-algo` or above; library code is generic over `B: Backend`, and
//! only [`backend`] names concrete ones.

pub mod backend;
pub mod checkpoint;
mod error;
pub mod hash;
mod host;
mod host_train;
pub mod linalg;
mod qnetwork;
pub mod quant;
pub mod subnormals;
pub mod text;

pub use error::ModelError;
pub use host::{HostLinear, HostQNetwork, argmax};
pub use host_train::{AdamRecord, HostAdam, HostAdamConfig, HostMlp, MlpGradients, Tape};
pub use qnetwork::{Activation, QNetwork, QNetworkConfig, QNetworkRecord, uniform_linear};
