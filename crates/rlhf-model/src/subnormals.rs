//! Subnormal floats flushed to zero on the CPU.
//!
//! Training drifts weights, gradients and Adam's moments toward values
//! below `f32::MIN_POSITIVE` (subnormals), and x86 processors compute with
//! those through microcode at a hundred times the cost of an ordinary
//! operation: a DQN gradient step measured 1.4 ms at its start and 4.5–5.0
//! ms after a few seconds (issue 21). Flushing them to zero keeps the
//! arithmetic at full speed; a number that small never changes what a
//! network computes in any way that matters.
//!
//! The setting is per thread (x86-64: the MXCSR flags flush-to-zero and
//! denormals-are-zero; aarch64: the FPCR flag FZ), so it has to be set on
//! every thread that runs backend kernels: [`flush_subnormals_everywhere`]
//! sets it on the calling thread and on every thread of rayon's global pool
//! (which burn's CPU kernels use), and [`flush_subnormals_on_this_thread`]
//! on one thread. Threads started afterwards inherit the flags from the
//! thread that starts them (POSIX threads copy their creator's
//! floating-point environment), so a program that calls
//! [`flush_subnormals_everywhere`] first thing covers its servers' workers
//! and learner threads too. `cargo xtask` and the criterion benchmarks do
//! ([`flush_subnormals_unless_kept`]), unless `RLHF_KEEP_SUBNORMALS=1`.
//!
//! Reproducibility: a run is bit-for-bit reproducible with the flags set, as
//! without them. The two settings give the same bits as long as no
//! operation produces or reads a subnormal; once one does, the flushed run
//! has a zero where the other has a tiny number, and the runs part (by
//! amounts far below any learning result; `tests/subnormals.rs` shows both).

/// The MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
#[cfg(target_arch = "x86_64")]
const MXCSR_FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

/// The FPCR bit FZ (24): flush-to-zero.
#[cfg(target_arch = "aarch64")]
const FPCR_FZ: u64 = 1 << 24;

/// The only `unsafe` of the crate: reading and writing the calling thread's
/// floating-point control register.
#[allow(unsafe_code)]
mod control_register {
    /// The calling thread's MXCSR.
    #[cfg(target_arch = "x86_64")]
    pub fn read() -> u32 {
        let mut value: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR at the address given,
        // which is a valid, aligned `u32` of this frame.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags)) };
        value
    }

    /// Sets the calling thread's MXCSR to `value`.
    #[cfg(target_arch = "x86_64")]
    pub fn write(value: u32) {
        // SAFETY: `ldmxcsr` loads the 32-bit MXCSR from a valid, aligned
        // `u32`. Callers only add the FTZ and DAZ bits to the value read,
        // which change how tiny results round, never raise a fault or
        // change the exception masks or the rounding mode.
        unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags)) };
    }

    /// The calling thread's FPCR.
    #[cfg(target_arch = "aarch64")]
    pub fn read() -> u64 {
        let value: u64;
        // SAFETY: reading FPCR has no side effect.
        unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }

    /// Sets the calling thread's FPCR to `value`.
    #[cfg(target_arch = "aarch64")]
    pub fn write(value: u64) {
        // SAFETY: callers only add the FZ bit to the value read (see the x86 case).
        unsafe { core::arch::asm!("msr fpcr, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
    }
}

/// Makes the calling thread flush subnormal results and inputs to zero.
/// Returns whether it could (`false` on processors other than x86-64 and
/// aarch64, where nothing changes).
pub fn flush_subnormals_on_this_thread() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        control_register::write(control_register::read() | MXCSR_FTZ_DAZ);
        true
    }
    #[cfg(target_arch = "aarch64")]
    {
        control_register::write(control_register::read() | FPCR_FZ);
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    false
}

/// Whether the calling thread flushes subnormals to zero.
pub fn flushing_subnormals() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        control_register::read() & MXCSR_FTZ_DAZ == MXCSR_FTZ_DAZ
    }
    #[cfg(target_arch = "aarch64")]
    {
        control_register::read() & FPCR_FZ != 0
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    false
}

/// [`flush_subnormals_on_this_thread`] on the calling thread and on every
/// thread of rayon's global pool (started now if it was not). Returns
/// whether it could.
pub fn flush_subnormals_everywhere() -> bool {
    let here = flush_subnormals_on_this_thread();
    // The global pool's threads are fixed once started: setting the flag on
    // each of them once covers every kernel they will run.
    let pool = rayon::broadcast(|_| flush_subnormals_on_this_thread());
    here && pool.into_iter().all(|done| done)
}

/// [`flush_subnormals_everywhere`], unless the environment variable
/// `RLHF_KEEP_SUBNORMALS` is `1` (to measure or reproduce a run without the
/// flags). Returns whether the flags are set.
pub fn flush_subnormals_unless_kept() -> bool {
    std::env::var_os("RLHF_KEEP_SUBNORMALS").is_none_or(|v| v != "1") && flush_subnormals_everywhere()
}
