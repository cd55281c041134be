//! Flushing subnormals: what the flags do to one number (IEEE 754's gradual
//! underflow without them, zero with them), that every thread of rayon's
//! pool gets them, and what they do to burn's kernels: nothing to a
//! network's output while no subnormal arises, zeros where one would.
//!
//! One test, in its own process: the pool's flags are process-wide, so the
//! runs without them come first.

use std::hint::black_box;

use burn::tensor::{Tensor, TensorData};
use rlhf_model::QNetworkConfig;
use rlhf_model::backend::{CpuBackend, cpu_device};
use rlhf_model::subnormals::{flush_subnormals_everywhere, flush_subnormals_on_this_thread, flushing_subnormals};

/// Q-values of a fixed network on a fixed batch, and a tensor of
/// `f32::MIN_POSITIVE` halved by the backend, computed on a fresh thread
/// (which starts without the flags) after `setup`.
fn through_burn(setup: fn() -> bool) -> (Vec<f32>, Vec<f32>) {
    std::thread::spawn(move || {
        setup();
        let device = cpu_device();
        let network = QNetworkConfig::new(4, 2).with_hidden(vec![64, 64]).init::<CpuBackend>(&device, 3);
        let batch: Vec<f32> = (0..256).map(|i| (i * 37 % 101) as f32 / 50.0 - 1.0).collect();
        let obs = Tensor::<CpuBackend, 2>::from_data(TensorData::new(batch, [64, 4]), &device);
        let q = network.forward(obs).into_data().to_vec::<f32>().unwrap();
        let tiny = Tensor::<CpuBackend, 1>::from_data(TensorData::new(vec![f32::MIN_POSITIVE; 4096], [4096]), &device);
        (q, tiny.mul_scalar(0.5).into_data().to_vec::<f32>().unwrap())
    })
    .join()
    .unwrap()
}

#[test]
fn flushed_threads_turn_subnormals_into_zero_and_leave_everything_else_alone() {
    let tiny = f32::MIN_POSITIVE;
    // Without the flags: gradual underflow, by IEEE 754.
    let (half, read) = std::thread::spawn(move || {
        assert!(!flushing_subnormals(), "a new thread starts without the flags");
        (black_box(tiny) * black_box(0.5), black_box(f32::from_bits(1)) * black_box(1.0))
    })
    .join()
    .unwrap();
    assert!(half.is_subnormal() && read == f32::from_bits(1), "{half:e} {read:e}");
    let (q_without, halves_without) = through_burn(|| false);

    // With them: a subnormal result is 0, and a subnormal input reads as 0.
    let (half, read, flushing) = std::thread::spawn(move || {
        assert!(flush_subnormals_on_this_thread(), "x86-64 and aarch64 have the flags");
        (black_box(tiny) * black_box(0.5), black_box(f32::from_bits(1)) * black_box(1.0), flushing_subnormals())
    })
    .join()
    .unwrap();
    assert_eq!((half, read, flushing), (0.0, 0.0, true));

    // Every thread of rayon's global pool, where burn's CPU kernels run; and
    // threads started afterwards inherit the flags (POSIX threads copy
    // their creator's floating-point environment).
    assert!(flush_subnormals_everywhere());
    #[cfg(target_os = "linux")]
    assert!(std::thread::spawn(flushing_subnormals).join().unwrap(), "a thread started now inherits them");
    assert!(rayon::broadcast(|_| flushing_subnormals()).into_iter().all(|f| f));
    let (q_with, halves_with) = through_burn(flush_subnormals_on_this_thread);

    // No subnormal anywhere: the same bits; a subnormal result of burn's
    // kernels: gradual underflow without the flags, zero with them.
    assert_eq!(q_with, q_without, "bit for bit while nothing is subnormal");
    assert!(halves_without.iter().all(|h| h.is_subnormal()), "{:e}", halves_without[0]);
    assert!(halves_with.iter().all(|&h| h == 0.0), "{:e}", halves_with[0]);
}
