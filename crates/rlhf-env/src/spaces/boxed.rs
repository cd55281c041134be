//! [`BoxSpace`]: real vectors between per-dimension bounds (Gymnasium's `Box`).

use std::fmt;

use rand::Rng;

use super::Space;
use crate::error::EnvError;
use crate::rng::{standard_normal, uniform_f64};

/// A box in `R^n` (f32 values) with per-dimension bounds, as Gymnasium's `Box`.
///
/// Bounds may be infinite. Sampling follows Gymnasium: uniform on a bounded
/// dimension, shifted exponential on a half-bounded one, standard normal on an
/// unbounded one.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxSpace {
    low: Vec<f32>,
    high: Vec<f32>,
    shape: Vec<usize>,
}

impl BoxSpace {
    /// A box with the given flat bounds, viewed with `shape`.
    ///
    /// Errors when the bounds' lengths differ from the shape's product, when a
    /// bound is NaN, or when `low > high` in some dimension.
    pub fn new(low: Vec<f32>, high: Vec<f32>, shape: Vec<usize>) -> Result<Self, EnvError> {
        let size: usize = shape.iter().product();
        if low.len() != size || high.len() != size {
            return Err(EnvError::InvalidConfig {
                field: "BoxSpace.shape",
                reason: format!(
                    "shape {shape:?} holds {size} values but low has {} and high {}",
                    low.len(),
                    high.len()
                ),
            });
        }
        if let Some(i) = (0..size).find(|&i| low[i].is_nan() || high[i].is_nan() || low[i] > high[i]) {
            return Err(EnvError::InvalidConfig {
                field: "BoxSpace.low",
                reason: format!("dimension {i}: low {} must be <= high {}", low[i], high[i]),
            });
        }
        Ok(Self { low, high, shape })
    }

    /// A flat box from bounds the caller knows to be valid (same length, `low <= high`).
    pub(crate) fn from_valid_bounds(low: Vec<f32>, high: Vec<f32>) -> Self {
        debug_assert!(low.len() == high.len() && low.iter().zip(&high).all(|(l, h)| l <= h));
        let shape = vec![low.len()];
        Self { low, high, shape }
    }

    /// A flat box `[low, high]^n`.
    pub fn uniform(low: f32, high: f32, n: usize) -> Result<Self, EnvError> {
        Self::new(vec![low; n], vec![high; n], vec![n])
    }

    /// Lower bounds, flattened.
    pub fn low(&self) -> &[f32] {
        &self.low
    }

    /// Upper bounds, flattened.
    pub fn high(&self) -> &[f32] {
        &self.high
    }

    /// The shape, e.g. `[4]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of scalars in one element.
    pub fn flat_dim(&self) -> usize {
        self.low.len()
    }

    /// Whether a flat slice is an element: right length, every value within
    /// its bounds (NaN never is).
    pub fn contains_slice(&self, value: &[f32]) -> bool {
        value.len() == self.low.len()
            && value.iter().zip(self.low.iter().zip(&self.high)).all(|(v, (lo, hi))| lo <= v && v <= hi)
    }

    fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f32]) {
        for (slot, (&lo, &hi)) in out.iter_mut().zip(self.low.iter().zip(&self.high)) {
            let (lo, hi) = (f64::from(lo), f64::from(hi));
            let exponential = |rng: &mut R| -(1.0 - uniform_f64(rng, 0.0, 1.0)).ln();
            let value = match (lo.is_finite(), hi.is_finite()) {
                (true, true) => uniform_f64(rng, lo, hi),
                (true, false) => lo + exponential(rng),
                (false, true) => hi - exponential(rng),
                (false, false) => standard_normal(rng),
            };
            // Rounding to f32 may step just outside a finite bound.
            *slot = (value as f32).clamp(lo as f32, hi as f32);
        }
    }
}

impl<const N: usize> Space<[f32; N]> for BoxSpace {
    fn contains(&self, value: &[f32; N]) -> bool {
        self.contains_slice(value)
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> [f32; N] {
        let mut out = [0.0; N];
        self.sample_into(rng, &mut out);
        out
    }
}

impl Space<Vec<f32>> for BoxSpace {
    fn contains(&self, value: &Vec<f32>) -> bool {
        self.contains_slice(value)
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f32> {
        let mut out = vec![0.0; self.flat_dim()];
        self.sample_into(rng, &mut out);
        out
    }
}

impl fmt::Display for BoxSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Box({:?}, {:?}, {:?}, f32)", self.low, self.high, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng;

    #[test]
    fn contains_respects_bounds_length_and_nan() {
        let space = BoxSpace::new(vec![-1.0, 0.0], vec![1.0, f32::INFINITY], vec![2]).unwrap();
        assert!(space.contains(&[-1.0, 0.0]));
        assert!(space.contains(&[1.0, 1e30]));
        assert!(!space.contains(&[1.5, 0.0]));
        assert!(!space.contains(&[0.0, -0.1]));
        assert!(!space.contains(&[f32::NAN, 0.0]));
        assert!(!space.contains(&vec![0.0, 0.0, 0.0]));
    }

    #[test]
    fn samples_lie_in_the_box_for_every_kind_of_bound() {
        let inf = f32::INFINITY;
        let space = BoxSpace::new(vec![-2.0, 3.0, -inf, -inf], vec![2.0, inf, 5.0, inf], vec![2, 2]).unwrap();
        let mut rng = seeded_rng(9);
        for _ in 0..1_000 {
            let x: [f32; 4] = space.sample(&mut rng);
            assert!(space.contains(&x), "{x:?}");
        }
    }

    #[test]
    fn invalid_bounds_are_errors_naming_the_problem() {
        let err = BoxSpace::new(vec![0.0; 3], vec![1.0; 3], vec![2]).unwrap_err();
        assert!(err.to_string().contains("shape [2] holds 2 values"), "{err}");
        let err = BoxSpace::new(vec![1.0], vec![0.0], vec![1]).unwrap_err();
        assert!(err.to_string().contains("dimension 0"), "{err}");
    }
}
