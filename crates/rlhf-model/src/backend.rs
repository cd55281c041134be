//! Concrete backends, chosen by cargo feature.
//!
//! [`CpuBackend`] is the CPU backend used by default: burn-flex when the
//! `flex` feature is on (the default, and the fastest measured here),
//! otherwise burn-ndarray. [`AutodiffCpu`] adds gradients for training.

#[cfg(feature = "flex")]
/// The default CPU backend (burn-flex, f32).
pub type CpuBackend = burn::backend::Flex;

#[cfg(all(feature = "ndarray", not(feature = "flex")))]
/// The default CPU backend (burn-ndarray, f32).
pub type CpuBackend = burn::backend::NdArray;

#[cfg(feature = "ndarray")]
/// burn-ndarray, f32.
pub type NdArrayBackend = burn::backend::NdArray;

#[cfg(feature = "flex")]
/// burn-flex, f32.
pub type FlexBackend = burn::backend::Flex;

#[cfg(feature = "wgpu")]
/// burn-wgpu (GPU), f32.
pub type WgpuBackend = burn::backend::Wgpu;

/// [`CpuBackend`] with automatic differentiation, for training.
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub type AutodiffCpu = burn::backend::Autodiff<CpuBackend>;

/// The device of [`CpuBackend`].
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub fn cpu_device() -> burn::tensor::Device<CpuBackend> {
    Default::default()
}

/// The name of [`CpuBackend`], for metadata and logs.
#[cfg(feature = "flex")]
pub const CPU_BACKEND_NAME: &str = "flex";
/// The name of [`CpuBackend`], for metadata and logs.
#[cfg(all(feature = "ndarray", not(feature = "flex")))]
pub const CPU_BACKEND_NAME: &str = "ndarray";

/// Whether `B` computes on the CPU (burn-flex or burn-ndarray): where the
/// host training path ([`crate::HostMlp`]) replaces burn's kernels with no
/// change of device.
pub fn is_cpu_backend<B: burn::tensor::backend::Backend>() -> bool {
    let id = std::any::TypeId::of::<B>();
    #[cfg(feature = "flex")]
    if id == std::any::TypeId::of::<burn::backend::Flex>() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    if id == std::any::TypeId::of::<burn::backend::NdArray>() {
        return true;
    }
    let _ = id;
    false
}
