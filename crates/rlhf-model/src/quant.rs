//! Int8 block-quantised linear layers and a fast GELU, for transformer
//! inference on one CPU core with a few rows of activations (a sentence's
//! 10–60 tokens).
//!
//! With so few rows a product `x · Wᵀ` is bound by reading `W`, so
//! [`QuantizedLinear`] keeps `W` in 8 bits (4 times less to read than f32),
//! streams each weight once and dots it against every activation row while
//! they sit in L1. Weights and activations are both quantised in blocks of
//! [`BLOCK`] values with one f32 scale per block; the block dot products are
//! exact integers and only their scaled sum is floating point, taken in a
//! fixed order, so every kernel ([`Kernel`]) gives the same bits.
//!
//! [`gelu_in_place`] is `x·Φ(x)` with our own piecewise-polynomial erf
//! (within 2e-7 of `libm::erff`), written so the compiler vectorises it.
//!
//! ```
//! use rlhf_model::quant::{QuantizedLinear, gelu_in_place};
//!
//! // y = x · Wᵀ + b with W [2, 32] and one row of x.
//! let weights: Vec<f32> = (0..64).map(|i| (i % 7) as f32 - 3.0).collect();
//! let linear = QuantizedLinear::from_f32(&weights, vec![0.5, -0.5], 32, 2)?;
//! let x = vec![1.0_f32; 32];
//! let mut y = Vec::new();
//! linear.forward(&x, 1, &mut y)?;
//! assert_eq!(y.len(), 2);
//! gelu_in_place(&mut y);
//! # Ok::<(), rlhf_model::ModelError>(())
//! ```

use std::cell::RefCell;

use crate::error::ModelError;

/// Values per quantisation block, along `d_in`.
pub const BLOCK: usize = 32;

/// Bytes of one block in the model file's 4-bit format: an f16 scale, then 16
/// bytes of two nibbles each.
pub const Q4_BLOCK_BYTES: usize = 2 + BLOCK / 2;

/// Outputs computed together: one f32 lane each in a 512-bit register.
const GROUP: usize = 16;

/// Four consecutive `d_in` values of each of a group's outputs: what one
/// VNNI instruction multiplies (4 bytes per 32-bit lane).
const CHUNK: usize = 4 * GROUP;

/// Chunks per block.
const CHUNKS: usize = BLOCK / 4;

/// Weights are stored as `w + 128` in a `u8` (the unsigned operand VNNI
/// wants); activations as plain `i8`.
const OFFSET: i32 = 128;

/// `2^23 + 2^22`: adding and subtracting it rounds an f32 below 2^22 in
/// magnitude to the nearest integer, ties to even, with plain arithmetic that
/// vectorises on any width (`f32::round` is a library call without SSE4.1).
const ROUNDER: f32 = 12_582_912.0;

/// Which inner loop computes the block dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Scalar,
    /// x86-64 AVX2 (`vpmaddubsw`), 8 outputs per register.
    Avx2,
    /// x86-64 AVX-512 with VNNI (`vpdpbusd`), 16 outputs per register.
    Avx512Vnni,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        [Self::Avx512Vnni, Self::Avx2].into_iter().find(|k| k.is_available()).unwrap_or(Self::Scalar)
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// `y = x · Wᵀ + b` with `W` `[d_out, d_in]` held as int8 in blocks of
/// [`BLOCK`] along `d_in`, one f32 scale per block, and an f32 bias.
///
/// Internally the outputs are interleaved in groups of 16, four `d_in`
/// values at a time, so that one 512-bit load holds the next four weights of
/// 16 outputs; `d_out` is padded to a multiple of 16 with zero weights.
#[derive(Debug, Clone)]
pub struct QuantizedLinear {
    d_in: usize,
    d_out: usize,
    /// `w + 128`, `[groups, blocks, CHUNKS, GROUP, 4]`.
    weights: Vec<u8>,
    /// `[groups, blocks, GROUP]`.
    scales: Vec<f32>,
    /// `[groups · GROUP]`, zero-padded.
    bias: Vec<f32>,
}

impl QuantizedLinear {
    /// From the model file's 4-bit blocks, losslessly: `blocks` holds the
    /// rows of `W` one after another, `d_in / 32` blocks of
    /// [`Q4_BLOCK_BYTES`] per row (little-endian f16 scale `d`, then 16 bytes
    /// whose byte `j` holds value `j` in its low nibble and value `j + 16` in
    /// its high one; a value is `(q − 8)·d`).
    pub fn from_q4_blocks(blocks: &[u8], bias: Vec<f32>, d_in: usize, d_out: usize) -> Result<Self, ModelError> {
        check_shape(d_in, d_out, &bias)?;
        let nb = d_in / BLOCK;
        expect_len("4-bit weight bytes", d_out * nb * Q4_BLOCK_BYTES, blocks.len())?;
        let mut linear = Self::zeroed(d_in, d_out, bias);
        let mut values = [0_i8; BLOCK];
        for (index, block) in blocks.chunks_exact(Q4_BLOCK_BYTES).enumerate() {
            let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            if !scale.is_finite() {
                return Err(ModelError::InvalidConfig {
                    field: "4-bit weight scale",
                    reason: format!("block {index} has scale {scale}"),
                });
            }
            for (j, &byte) in block[2..].iter().enumerate() {
                // Nibbles are 0..=15, so q − 8 fits an i8.
                values[j] = (byte & 0x0f) as i8 - 8;
                values[j + BLOCK / 2] = (byte >> 4) as i8 - 8;
            }
            linear.set_block(index / nb, index % nb, &values, scale);
        }
        Ok(linear)
    }

    /// From f32 weights `[d_out, d_in]` (PyTorch's `Linear` layout), rounded
    /// to int8 per block with scale `max|w| / 127`.
    pub fn from_f32(weights: &[f32], bias: Vec<f32>, d_in: usize, d_out: usize) -> Result<Self, ModelError> {
        check_shape(d_in, d_out, &bias)?;
        expect_len("weights", d_out * d_in, weights.len())?;
        if let Some(bad) = weights.iter().position(|w| !w.is_finite()) {
            return Err(ModelError::InvalidConfig {
                field: "weights",
                reason: format!("weight {bad} is {}", weights[bad]),
            });
        }
        let nb = d_in / BLOCK;
        let mut linear = Self::zeroed(d_in, d_out, bias);
        let mut values = [0_i8; BLOCK];
        for (index, block) in weights.chunks_exact(BLOCK).enumerate() {
            let max = block.iter().fold(0.0_f32, |m, w| m.max(w.abs()));
            let scale = max / 127.0;
            for (q, &w) in values.iter_mut().zip(block) {
                // |w / scale| ≤ 127, so the cast never saturates; 0 / 0 gives 0.
                *q = if scale > 0.0 { (w / scale).round() as i8 } else { 0 };
            }
            linear.set_block(index / nb, index % nb, &values, scale);
        }
        Ok(linear)
    }

    fn zeroed(d_in: usize, d_out: usize, mut bias: Vec<f32>) -> Self {
        let (groups, nb) = (d_out.div_ceil(GROUP), d_in / BLOCK);
        bias.resize(groups * GROUP, 0.0);
        Self {
            d_in,
            d_out,
            weights: vec![OFFSET as u8; groups * nb * BLOCK * GROUP],
            scales: vec![0.0; groups * nb * GROUP],
            bias,
        }
    }

    /// Stores block `block` of output `row`.
    fn set_block(&mut self, row: usize, block: usize, values: &[i8; BLOCK], scale: f32) {
        let nb = self.d_in / BLOCK;
        let (group, lane) = (row / GROUP, row % GROUP);
        let base = (group * nb + block) * BLOCK * GROUP;
        for (k, &value) in values.iter().enumerate() {
            let at = base + (k / 4) * CHUNK + lane * 4 + k % 4;
            self.weights[at] = (i32::from(value) + OFFSET) as u8;
        }
        self.scales[(group * nb + block) * GROUP + lane] = scale;
    }

    /// Input size.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Output size.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// The bias, `[d_out]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias[..self.d_out]
    }

    /// The weights as f32, `[d_out, d_in]`: each int8 value times its
    /// block's scale.
    pub fn dequantised(&self) -> Vec<f32> {
        let nb = self.d_in / BLOCK;
        let mut out = Vec::with_capacity(self.d_out * self.d_in);
        for row in 0..self.d_out {
            let (group, lane) = (row / GROUP, row % GROUP);
            for block in 0..nb {
                let base = (group * nb + block) * BLOCK * GROUP;
                let scale = self.scales[(group * nb + block) * GROUP + lane];
                out.extend((0..BLOCK).map(|k| {
                    let q = i32::from(self.weights[base + (k / 4) * CHUNK + lane * 4 + k % 4]) - OFFSET;
                    q as f32 * scale
                }));
            }
        }
        out
    }

    /// `out` (resized to `[rows, d_out]`) = `x · Wᵀ + b`, `x` `[rows, d_in]`,
    /// all row-major, with this thread's scratch buffers and the fastest
    /// kernel of the CPU.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
        thread_local! {
            static SCRATCH: RefCell<QuantScratch> = RefCell::new(QuantScratch::default());
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => self.forward_with(x, rows, out, &mut scratch),
            // Only re-entrance (impossible here) could hold it: use fresh buffers.
            Err(_) => self.forward_with(x, rows, out, &mut QuantScratch::default()),
        })
    }

    /// [`forward`](Self::forward) with scratch buffers you keep.
    pub fn forward_with(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
        scratch: &mut QuantScratch,
    ) -> Result<(), ModelError> {
        self.forward_using(Kernel::detect(), x, rows, out, scratch)
    }

    /// [`forward_with`](Self::forward_with) with a given kernel, which must
    /// be available ([`Kernel::is_available`]); every kernel gives the same
    /// bits.
    pub fn forward_using(
        &self,
        kernel: Kernel,
        x: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
        scratch: &mut QuantScratch,
    ) -> Result<(), ModelError> {
        expect_len("activations", rows * self.d_in, x.len())?;
        if !kernel.is_available() {
            return Err(ModelError::InvalidConfig {
                field: "kernel",
                reason: format!("{kernel:?} does not run on this CPU"),
            });
        }
        out.clear();
        out.resize(rows * self.d_out, 0.0);
        if rows == 0 {
            return Ok(());
        }
        scratch.quantise(x, rows, self.d_in, kernel);
        let QuantScratch { xq, dx, corr, acc } = scratch;
        acc.clear();
        acc.resize(rows, [0.0; GROUP]);
        let act = Activations { xq: xq.as_chunks::<BLOCK>().0, dx, corr };
        match kernel {
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            // SAFETY: `is_available` checked the features each kernel is compiled for.
            Kernel::Avx512Vnni => unsafe { x86::products_vnni(self, &act, acc, out) },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { x86::products_avx2(self, &act, acc, out) },
            _ => products_scalar(self, &act, acc, out),
        }
        Ok(())
    }

    /// Writes group `group`'s sums plus bias to its columns of `out`.
    fn write_group(&self, group: usize, acc: &[[f32; GROUP]], out: &mut [f32]) {
        let first = group * GROUP;
        let width = GROUP.min(self.d_out - first);
        let bias = &self.bias[first..first + GROUP];
        for (row, sums) in out.chunks_exact_mut(self.d_out).zip(acc) {
            for ((y, s), b) in row[first..first + width].iter_mut().zip(sums).zip(bias) {
                *y = s + b;
            }
        }
    }
}

/// Reusable buffers of [`QuantizedLinear::forward_with`]: the quantised
/// activations and the running sums. They grow to the largest call and stay.
#[derive(Debug, Clone, Default)]
pub struct QuantScratch {
    /// `[rows, d_in]`.
    xq: Vec<i8>,
    /// Activation scale per block, `[rows, blocks]`.
    dx: Vec<f32>,
    /// `−128 · Σ xq` per block, `[rows, blocks]`: takes away what the
    /// weights' offset adds.
    corr: Vec<i32>,
    /// One group's running sums, `[rows, GROUP]`.
    acc: Vec<[f32; GROUP]>,
}

impl QuantScratch {
    /// Quantises `x` `[rows, d_in]` per block: scale `max|x| / 127`, values
    /// rounded to the nearest integer (ties to even).
    fn quantise(&mut self, x: &[f32], rows: usize, d_in: usize, kernel: Kernel) {
        let blocks = rows * d_in / BLOCK;
        self.xq.clear();
        self.xq.resize(rows * d_in, 0);
        self.dx.clear();
        self.dx.resize(blocks, 0.0);
        self.corr.clear();
        self.corr.resize(blocks, 0);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            // SAFETY: the caller checked that the kernel's features are present.
            Kernel::Avx512Vnni => unsafe { x86::quantise_avx512(x, self) },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { x86::quantise_avx2(x, self) },
            _ => quantise_blocks(x, self),
        }
    }
}

/// Quantised activations as the kernels read them.
struct Activations<'a> {
    /// `[rows · blocks]` blocks.
    xq: &'a [[i8; BLOCK]],
    dx: &'a [f32],
    corr: &'a [i32],
}

/// The body of every quantisation kernel: plain code that each caller's
/// target features vectorise.
#[inline(always)]
fn quantise_blocks(x: &[f32], scratch: &mut QuantScratch) {
    let blocks = x.as_chunks::<BLOCK>().0;
    let xq = scratch.xq.as_chunks_mut::<BLOCK>().0;
    for (((block, q), dx), corr) in blocks.iter().zip(xq).zip(&mut scratch.dx).zip(&mut scratch.corr) {
        // Eight running maxima, so the reduction vectorises (max is exact in any order).
        let mut lanes = [0.0_f32; 8];
        for part in block.as_chunks::<8>().0 {
            for (m, v) in lanes.iter_mut().zip(part) {
                let a = v.abs();
                *m = if a > *m { a } else { *m };
            }
        }
        let max = lanes.iter().fold(0.0_f32, |m, &a| if a > m { a } else { m });
        let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
        let mut sum = 0_i32;
        for (q, v) in q.iter_mut().zip(block) {
            // |v · inv| ≤ 127 (plus rounding), so the rounded value is in -127..=127.
            let r = (v * inv + ROUNDER) - ROUNDER;
            *q = r as i8;
            sum += i32::from(*q);
        }
        *dx = max / 127.0;
        *corr = -OFFSET * sum;
    }
}

/// The portable kernel; the SIMD ones compute the same sums in the same order.
fn products_scalar(linear: &QuantizedLinear, act: &Activations<'_>, acc: &mut [[f32; GROUP]], out: &mut [f32]) {
    let nb = linear.d_in / BLOCK;
    let chunks = linear.weights.as_chunks::<CHUNK>().0;
    let scales = linear.scales.as_chunks::<GROUP>().0;
    for group in 0..linear.bias.len() / GROUP {
        acc.fill([0.0; GROUP]);
        for block in 0..nb {
            let w = &chunks[(group * nb + block) * CHUNKS..][..CHUNKS];
            let sw = &scales[group * nb + block];
            for (row, sums) in acc.iter_mut().enumerate() {
                let at = row * nb + block;
                let mut dots = [0_i32; GROUP];
                for (chunk, x4) in w.iter().zip(act.xq[at].as_chunks::<4>().0) {
                    for (dot, w4) in dots.iter_mut().zip(chunk.as_chunks::<4>().0) {
                        for (&w, &x) in w4.iter().zip(x4) {
                            *dot += i32::from(w) * i32::from(x);
                        }
                    }
                }
                for ((sum, dot), s) in sums.iter_mut().zip(dots).zip(sw) {
                    *sum += (dot + act.corr[at]) as f32 * (s * act.dx[at]);
                }
            }
        }
        linear.write_group(group, acc, out);
    }
}

/// The x86-64 kernels: the crate's only intrinsics. Value intrinsics are safe
/// inside functions compiled with their features; the `unsafe` left is the
/// loads and stores (through array references, so always in bounds) and the
/// calls in from code that checked the features.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Activations, BLOCK, CHUNK, CHUNKS, GROUP, QuantScratch, QuantizedLinear};

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn quantise_avx512(x: &[f32], scratch: &mut QuantScratch) {
        super::quantise_blocks(x, scratch);
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn quantise_avx2(x: &[f32], scratch: &mut QuantScratch) {
        super::quantise_blocks(x, scratch);
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn gelu_avx512(xs: &mut [f32]) {
        super::gelu_body(xs);
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn gelu_avx2(xs: &mut [f32]) {
        super::gelu_body(xs);
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_512(bytes: &[u8; 64]) -> __m512i {
        // SAFETY: the reference covers the 64 bytes read; no alignment needed.
        unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_ps_512(values: &[f32; 16]) -> __m512 {
        // SAFETY: as in `load_512`.
        unsafe { _mm512_loadu_ps(values.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store_ps_512(values: &mut [f32; 16], v: __m512) {
        // SAFETY: the exclusive reference covers the 64 bytes written.
        unsafe { _mm512_storeu_ps(values.as_mut_ptr(), v) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_256(bytes: &[u8; 32]) -> __m256i {
        // SAFETY: the reference covers the 32 bytes read; no alignment needed.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_ps_256(values: &[f32; 8]) -> __m256 {
        // SAFETY: as in `load_256`.
        unsafe { _mm256_loadu_ps(values.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn store_ps_256(values: &mut [f32; 8], v: __m256) {
        // SAFETY: the exclusive reference covers the 32 bytes written.
        unsafe { _mm256_storeu_ps(values.as_mut_ptr(), v) }
    }

    /// Four activations as the 32-bit lane a broadcast repeats.
    #[inline(always)]
    fn lane(x4: &[i8; 4]) -> i32 {
        i32::from_le_bytes(x4.map(|v| v as u8))
    }

    /// `vpdpbusd` sums four products `(w + 128)·x` per lane: one instruction
    /// per four `d_in` values of 16 outputs. A group's block (8 registers) is
    /// loaded once and reused for every row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn products_vnni(
        linear: &QuantizedLinear,
        act: &Activations<'_>,
        acc: &mut [[f32; GROUP]],
        out: &mut [f32],
    ) {
        let nb = linear.d_in / BLOCK;
        let chunks = linear.weights.as_chunks::<CHUNK>().0;
        let scales = linear.scales.as_chunks::<GROUP>().0;
        for group in 0..linear.bias.len() / GROUP {
            acc.fill([0.0; GROUP]);
            for block in 0..nb {
                let w = &chunks[(group * nb + block) * CHUNKS..][..CHUNKS];
                let w = [
                    load_512(&w[0]),
                    load_512(&w[1]),
                    load_512(&w[2]),
                    load_512(&w[3]),
                    load_512(&w[4]),
                    load_512(&w[5]),
                    load_512(&w[6]),
                    load_512(&w[7]),
                ];
                let sw = load_ps_512(&scales[group * nb + block]);
                for (row, sums) in acc.iter_mut().enumerate() {
                    let at = row * nb + block;
                    let x = act.xq[at].as_chunks::<4>().0;
                    // Starting from the correction saves a subtraction; two chains
                    // halve the dependent latency.
                    let mut even = _mm512_set1_epi32(act.corr[at]);
                    let mut odd = _mm512_setzero_si512();
                    for k in (0..CHUNKS).step_by(2) {
                        even = _mm512_dpbusd_epi32(even, w[k], _mm512_set1_epi32(lane(&x[k])));
                        odd = _mm512_dpbusd_epi32(odd, w[k + 1], _mm512_set1_epi32(lane(&x[k + 1])));
                    }
                    let dot = _mm512_add_epi32(even, odd);
                    let scale = _mm512_mul_ps(sw, _mm512_set1_ps(act.dx[at]));
                    let term = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), scale);
                    store_ps_512(sums, _mm512_add_ps(load_ps_512(sums), term));
                }
            }
            linear.write_group(group, acc, out);
        }
    }

    /// `vpmaddubsw` needs an unsigned operand below 128 to avoid saturating,
    /// so it multiplies `|w|` by `x` carrying the sign of `w`, then
    /// `vpmaddwd` sums the pairs. A group's 16 outputs are two halves of 8.
    #[target_feature(enable = "avx2")]
    pub(super) fn products_avx2(
        linear: &QuantizedLinear,
        act: &Activations<'_>,
        acc: &mut [[f32; GROUP]],
        out: &mut [f32],
    ) {
        let nb = linear.d_in / BLOCK;
        let chunks = linear.weights.as_chunks::<CHUNK>().0;
        let scales = linear.scales.as_chunks::<GROUP>().0;
        let flip = _mm256_set1_epi8(-128);
        let ones = _mm256_set1_epi16(1);
        for group in 0..linear.bias.len() / GROUP {
            acc.fill([0.0; GROUP]);
            for block in 0..nb {
                let w = &chunks[(group * nb + block) * CHUNKS..][..CHUNKS];
                let sw = scales[group * nb + block].as_chunks::<8>().0;
                for half in 0..2 {
                    // Signed weights and their magnitudes, reused for every row.
                    let mut signed = [_mm256_setzero_si256(); CHUNKS];
                    let mut magnitude = [_mm256_setzero_si256(); CHUNKS];
                    for ((s, m), chunk) in signed.iter_mut().zip(&mut magnitude).zip(w) {
                        *s = _mm256_xor_si256(load_256(&chunk.as_chunks::<32>().0[half]), flip);
                        *m = _mm256_abs_epi8(*s);
                    }
                    let sw = load_ps_256(&sw[half]);
                    for (row, sums) in acc.iter_mut().enumerate() {
                        let at = row * nb + block;
                        let x = act.xq[at].as_chunks::<4>().0;
                        let mut dot = _mm256_setzero_si256();
                        for k in 0..CHUNKS {
                            let xs = _mm256_sign_epi8(_mm256_set1_epi32(lane(&x[k])), signed[k]);
                            let pairs = _mm256_maddubs_epi16(magnitude[k], xs);
                            dot = _mm256_add_epi32(dot, _mm256_madd_epi16(pairs, ones));
                        }
                        // The weights here are signed already: no offset to remove.
                        let scale = _mm256_mul_ps(sw, _mm256_set1_ps(act.dx[at]));
                        let term = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), scale);
                        let sums = &mut sums.as_chunks_mut::<8>().0[half];
                        store_ps_256(sums, _mm256_add_ps(load_ps_256(sums), term));
                    }
                }
            }
            linear.write_group(group, acc, out);
        }
    }
}

/// `x·Φ(x)` (the exact GELU, `0.5·x·(1 + erf(x/√2))`) of every value, in
/// place, vectorised with the CPU's widest registers.
pub fn gelu_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            #[allow(unsafe_code)]
            // SAFETY: the feature was just detected.
            unsafe {
                x86::gelu_avx512(xs)
            };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            #[allow(unsafe_code)]
            // SAFETY: the feature was just detected.
            unsafe {
                x86::gelu_avx2(xs)
            };
            return;
        }
    }
    gelu_body(xs);
}

/// `x·Φ(x)` of one value, as [`gelu_in_place`] computes it.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_body(xs: &mut [f32]) {
    for x in xs {
        *x = gelu(*x);
    }
}

/// erf on `[0, 1]` as `z·P(z²)`, highest power first (the fit's constant
/// term is 2/√π, erf's slope at 0, to within an ulp).
const ERF_SMALL: [f32; 7] = [
    7.875875e-5,
    -0.00080168643,
    0.0051890872,
    -0.026854211,
    0.11283594,
    -0.37612626,
    std::f32::consts::FRAC_2_SQRT_PI,
];
/// erf on `[1, 2.5]` as `P(z − 1.75)`.
const ERF_MID: [f32; 10] = [
    0.0008667234,
    0.00019111673,
    -0.0060423436,
    0.009215519,
    0.0066208146,
    -0.048151795,
    0.09015754,
    -0.09235279,
    0.05277499,
    0.9866716,
];
/// erf on `[2.5, 3.9]` as `P(z − 3.2)`; above 3.9 erf is 1 within 4e-8.
const ERF_TAIL: [f32; 8] = [
    0.00022820754,
    -0.0004200792,
    0.00039555057,
    -0.00034788347,
    0.00026232333,
    -0.00013167244,
    4.028759e-5,
    0.99999404,
];

/// Horner's rule with separate multiply and add, so that every target
/// (with or without FMA) rounds alike.
#[inline(always)]
fn horner(coefficients: &[f32], t: f32) -> f32 {
    coefficients.iter().fold(0.0, |acc, &c| acc * t + c)
}

/// The error function, within 2e-7 of `libm::erff` (Chebyshev fits of our
/// own on three pieces). Branch-free, so a loop over it vectorises.
#[inline(always)]
pub fn erf(z: f32) -> f32 {
    let a = z.abs();
    let small = a * horner(&ERF_SMALL, a * a);
    let mid = horner(&ERF_MID, a - 1.75);
    let tail = horner(&ERF_TAIL, a - 3.2);
    let magnitude = if a < 1.0 {
        small
    } else if a < 2.5 {
        mid
    } else if a < 3.9 {
        tail
    } else if a >= 3.9 {
        1.0
    } else {
        a // NaN
    };
    magnitude.copysign(z)
}

fn check_shape(d_in: usize, d_out: usize, bias: &[f32]) -> Result<(), ModelError> {
    if d_in == 0 || !d_in.is_multiple_of(BLOCK) {
        return Err(ModelError::InvalidConfig {
            field: "d_in",
            reason: format!("{d_in} is not a positive multiple of the block size {BLOCK}"),
        });
    }
    expect_len("bias", d_out, bias.len())
}

fn expect_len(what: &'static str, expected: usize, found: usize) -> Result<(), ModelError> {
    if expected == found { Ok(()) } else { Err(ModelError::ShapeMismatch { what, expected, found }) }
}

/// An IEEE half-precision value, exactly (every f16 is an f32).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1024.0 + mantissa) * 2f32.powi(exponent - 25),
    };
    sign * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rlhf_env::rng::{seeded_rng, uniform_f64};

    fn random(n: usize, seed: u64, scale: f64) -> Vec<f32> {
        let mut rng = seeded_rng(seed);
        (0..n).map(|_| uniform_f64(&mut rng, -scale, scale) as f32).collect()
    }

    /// `x · Wᵀ + b` in f64.
    fn reference(x: &[f32], w: &[f32], b: &[f32], rows: usize, d_in: usize) -> Vec<f32> {
        let d_out = b.len();
        let mut out = Vec::with_capacity(rows * d_out);
        for r in 0..rows {
            for o in 0..d_out {
                let dot: f64 = (0..d_in).map(|k| f64::from(x[r * d_in + k]) * f64::from(w[o * d_in + k])).sum();
                out.push((dot + f64::from(b[o])) as f32);
            }
        }
        out
    }

    fn available() -> Vec<Kernel> {
        [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512Vnni].into_iter().filter(|k| k.is_available()).collect()
    }

    #[test]
    fn four_bit_blocks_convert_losslessly() {
        // Scale 0.5 is f16 0x3800. Byte j = (hi << 4) | lo with lo = j, hi = 15 − j:
        // value j = (j − 8)·0.5, value j + 16 = (7 − j)·0.5.
        let mut block = vec![0x00, 0x38];
        block.extend((0..16_u8).map(|j| ((15 - j) << 4) | j));
        // A second row: scale −2 (0xC000), every nibble 8 (value 0) but byte 3's low nibble 0 (value 16).
        let mut second = vec![0x00, 0xC0];
        second.extend((0..16_u8).map(|j| if j == 3 { 0x80 } else { 0x88 }));
        block.extend(second);
        let linear = QuantizedLinear::from_q4_blocks(&block, vec![1.0, 2.0], 32, 2).unwrap();
        let mut expected: Vec<f32> = (0..16).map(|j| (j as f32 - 8.0) * 0.5).collect();
        expected.extend((0..16).map(|j| (7.0 - j as f32) * 0.5));
        expected.extend((0..32).map(|k| if k == 3 { 16.0 } else { 0.0 }));
        assert_eq!(linear.dequantised(), expected);
        assert_eq!(linear.bias(), [1.0, 2.0]);
    }

    #[test]
    fn f16_scales_are_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn representable_products_are_exact() {
        // Integer weights whose blocks all reach 127 (scale exactly 1), and
        // activations that are multiples of 1/64 with a block maximum of
        // 127/64 (scale exactly 1/64), quantise without rounding; every
        // partial sum is then a multiple of 1/64 far below 2^18, exact in f32.
        let (d_in, d_out) = (64, 3);
        let w: Vec<f32> =
            (0..d_out * d_in).map(|i| if i % BLOCK == 0 { 127.0 } else { ((i * 37) % 255) as f32 - 127.0 }).collect();
        let b = vec![0.25, -1.0, 3.0];
        let linear = QuantizedLinear::from_f32(&w, b.clone(), d_in, d_out).unwrap();
        assert_eq!(linear.dequantised(), w);
        for rows in [1, 37] {
            let x: Vec<f32> = (0..rows * d_in)
                .map(|i| if i % BLOCK == 0 { 127.0 / 64.0 } else { ((i * 13) % 255) as f32 / 64.0 - 127.0 / 64.0 })
                .collect();
            let want = reference(&x, &w, &b, rows, d_in);
            for kernel in available() {
                let mut out = Vec::new();
                linear.forward_using(kernel, &x, rows, &mut out, &mut QuantScratch::default()).unwrap();
                assert_eq!(out, want, "{kernel:?}, {rows} rows");
            }
        }
    }

    #[test]
    fn bias_is_added() {
        let b: Vec<f32> = (0..20).map(|i| i as f32 * 0.5 - 3.0).collect();
        let linear = QuantizedLinear::from_f32(&vec![0.0; 20 * 32], b.clone(), 32, 20).unwrap();
        let mut out = Vec::new();
        linear.forward(&random(2 * 32, 1, 1.0), 2, &mut out).unwrap();
        assert_eq!(out, [b.clone(), b].concat());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(QuantizedLinear::from_f32(&[0.0; 48], vec![0.0], 48, 1).is_err());
        assert!(QuantizedLinear::from_f32(&[], vec![], 0, 0).is_err());
        assert!(QuantizedLinear::from_f32(&[0.0; 64], vec![0.0], 32, 1).is_err());
        assert!(QuantizedLinear::from_f32(&[0.0; 32], vec![0.0, 0.0], 32, 1).is_err());
        assert!(QuantizedLinear::from_f32(&[f32::NAN; 32], vec![0.0], 32, 1).is_err());
        assert!(QuantizedLinear::from_q4_blocks(&[0; 17], vec![0.0], 32, 1).is_err());
        assert!(QuantizedLinear::from_q4_blocks(&[0; 18], vec![0.0], 33, 1).is_err());
        let mut infinite = vec![0x00, 0x7c];
        infinite.extend([0x88; 16]);
        assert!(QuantizedLinear::from_q4_blocks(&infinite, vec![0.0], 32, 1).is_err());
        let linear = QuantizedLinear::from_f32(&[1.0; 64], vec![0.0; 2], 32, 2).unwrap();
        let mut out = Vec::new();
        assert!(linear.forward(&[0.0; 63], 2, &mut out).is_err());
        assert!(linear.forward(&[0.0; 32], 2, &mut out).is_err());
        linear.forward(&[], 0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn kernels_agree_bit_for_bit() {
        // Odd sizes: a partial group of outputs, rows not a multiple of anything.
        let (d_in, d_out, rows) = (96, 37, 23);
        let linear =
            QuantizedLinear::from_f32(&random(d_out * d_in, 2, 0.3), random(d_out, 3, 1.0), d_in, d_out).unwrap();
        let mut x = random(rows * d_in, 4, 2.0);
        x[5] = 0.0;
        x[40..72].fill(0.0); // an all-zero block
        let mut scalar = Vec::new();
        linear.forward_using(Kernel::Scalar, &x, rows, &mut scalar, &mut QuantScratch::default()).unwrap();
        for kernel in available() {
            let mut out = Vec::new();
            linear.forward_using(kernel, &x, rows, &mut out, &mut QuantScratch::default()).unwrap();
            assert!(out.iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits()), "{kernel:?}");
        }
        // What `forward` picks is one of them.
        let mut out = Vec::new();
        linear.forward(&x, rows, &mut out).unwrap();
        assert_eq!(out, scalar);
    }

    /// The bound on |kernel − exact| for row `r`, output `o`: each weight
    /// moves by at most half its block's step (max|w|/254) and each
    /// activation by half its step (max|x|/254), so a block adds at most
    /// Σ (|x|·δw + |w|·δx + δw·δx); the f32 sums add a relative 1e-5 of
    /// Σ|x||w| for rounding.
    fn tolerance(x: &[f32], w: &[f32], d_in: usize, r: usize, o: usize) -> f64 {
        let mut bound = 0.0;
        let mut magnitude = 0.0;
        for b in 0..d_in / BLOCK {
            let xs = &x[r * d_in + b * BLOCK..][..BLOCK];
            let ws = &w[o * d_in + b * BLOCK..][..BLOCK];
            let step = |v: &[f32]| v.iter().fold(0.0_f64, |m, a| m.max(f64::from(a.abs()))) / 254.0;
            let (dx, dw) = (step(xs), step(ws));
            for (a, c) in xs.iter().zip(ws) {
                let (a, c) = (f64::from(a.abs()), f64::from(c.abs()));
                bound += a * dw + c * dx + dx * dw;
                magnitude += a * c;
            }
        }
        bound + 1e-5 * magnitude + 1e-6
    }

    #[test]
    fn random_products_are_within_the_quantisation_bound() {
        let (d_in, d_out, rows) = (384, 40, 20);
        let w = random(d_out * d_in, 5, 0.1);
        let b = random(d_out, 6, 0.5);
        let x = random(rows * d_in, 7, 3.0);
        let linear = QuantizedLinear::from_f32(&w, b.clone(), d_in, d_out).unwrap();
        let mut out = Vec::new();
        linear.forward(&x, rows, &mut out).unwrap();
        let want = reference(&x, &w, &b, rows, d_in);
        for r in 0..rows {
            for o in 0..d_out {
                let error = f64::from((out[r * d_out + o] - want[r * d_out + o]).abs());
                assert!(error <= tolerance(&x, &w, d_in, r, o), "row {r} output {o}: error {error}");
            }
        }
    }

    #[test]
    fn scratch_is_reused() {
        let linear = QuantizedLinear::from_f32(&random(64 * 64, 8, 1.0), vec![0.0; 64], 64, 64).unwrap();
        let mut scratch = QuantScratch::default();
        let mut out = Vec::new();
        linear.forward_with(&random(10 * 64, 9, 1.0), 10, &mut out, &mut scratch).unwrap();
        let (xq, acc) = (scratch.xq.as_ptr(), scratch.acc.as_ptr());
        linear.forward_with(&random(7 * 64, 10, 1.0), 7, &mut out, &mut scratch).unwrap();
        assert_eq!((scratch.xq.as_ptr(), scratch.acc.as_ptr()), (xq, acc));
    }

    #[test]
    fn erf_and_gelu_match_libm_on_a_dense_grid() {
        let n = 2_000_001;
        let xs: Vec<f32> = (0..n).map(|i| -10.0 + 20.0 * i as f32 / (n - 1) as f32).collect();
        let mut fast = xs.clone();
        gelu_in_place(&mut fast);
        let (mut worst_erf, mut worst_gelu) = (0.0_f32, 0.0_f32);
        for (&x, &g) in xs.iter().zip(&fast) {
            let z = x * std::f32::consts::FRAC_1_SQRT_2;
            worst_erf = worst_erf.max((erf(z) - libm::erff(z)).abs());
            let exact = 0.5 * x * (1.0 + libm::erff(z));
            assert_eq!(g.to_bits(), gelu(x).to_bits(), "vectorised and scalar differ at {x}");
            // gelu's error is 0.5·|x| times erf's, plus the rounding of the product.
            let error = (g - exact).abs();
            worst_gelu = worst_gelu.max(error);
            assert!(error <= 0.5 * x.abs() * 1e-6 + 2.0 * f32::EPSILON * x.abs(), "gelu({x}): {g} vs {exact}");
        }
        assert!(worst_erf <= 1e-6, "erf: worst error {worst_erf}");
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(gelu(-20.0), -0.0);
        eprintln!("worst |erf − erff| {worst_erf:e}, worst |gelu − libm gelu| {worst_gelu:e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_match_the_reference(
            blocks in 1_usize..6,
            d_out in 1_usize..40,
            rows in 1_usize..12,
            seed in any::<u64>(),
            w_scale in 0.01_f64..10.0,
            x_scale in 0.01_f64..10.0,
        ) {
            let d_in = blocks * BLOCK;
            let w = random(d_out * d_in, seed, w_scale);
            let b = random(d_out, seed ^ 1, 1.0);
            let x = random(rows * d_in, seed ^ 2, x_scale);
            let linear = QuantizedLinear::from_f32(&w, b.clone(), d_in, d_out).unwrap();
            let want = reference(&x, &w, &b, rows, d_in);
            let mut scalar = Vec::new();
            linear.forward_using(Kernel::Scalar, &x, rows, &mut scalar, &mut QuantScratch::default()).unwrap();
            for r in 0..rows {
                for o in 0..d_out {
                    let error = f64::from((scalar[r * d_out + o] - want[r * d_out + o]).abs());
                    prop_assert!(error <= tolerance(&x, &w, d_in, r, o), "row {} output {}: {}", r, o, error);
                }
            }
            let mut out = Vec::new();
            linear.forward(&x, rows, &mut out).unwrap();
            prop_assert!(out.iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
