//! Turning observations into table rows: [`Discretize`], and
//! [`BoxDiscretizer`], which bins each dimension of a box observation.

use crate::error::AlgoError;

/// Maps observations to table rows `0..n_states()`.
pub trait Discretize<O> {
    /// Number of table rows.
    fn n_states(&self) -> usize;
    /// The row of `obs`.
    fn index(&self, obs: &O) -> usize;
}

/// For environments whose observations already are state indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityDiscretizer {
    /// Number of states.
    pub n_states: usize,
}

impl Discretize<usize> for IdentityDiscretizer {
    fn n_states(&self) -> usize {
        self.n_states
    }

    fn index(&self, obs: &usize) -> usize {
        (*obs).min(self.n_states.saturating_sub(1))
    }
}

/// Cuts each dimension of a box observation into equal-width bins between
/// `low` and `high` (values outside fall into the end bins) and numbers the
/// cells row-major. For CartPole, e.g. bins `[1, 1, 6, 12]` over
/// `[-2.4, -3, -0.21, -3.5]..[2.4, 3, 0.21, 3.5]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxDiscretizer {
    bins: Vec<usize>,
    low: Vec<f32>,
    high: Vec<f32>,
}

impl BoxDiscretizer {
    /// A discretiser with `bins[i]` bins over `[low[i], high[i]]`.
    pub fn new(bins: Vec<usize>, low: Vec<f32>, high: Vec<f32>) -> Result<Self, AlgoError> {
        if bins.len() != low.len() || bins.len() != high.len() || bins.is_empty() {
            return Err(AlgoError::InvalidConfig {
                field: "bins",
                reason: format!("{} bin counts for bounds of lengths {} and {}", bins.len(), low.len(), high.len()),
            });
        }
        if let Some(i) =
            (0..bins.len()).find(|&i| bins[i] == 0 || low[i].is_nan() || high[i].is_nan() || low[i] >= high[i])
        {
            return Err(AlgoError::InvalidConfig {
                field: "bins",
                reason: format!(
                    "dimension {i}: needs at least one bin and low < high, got {} bins over [{}, {}]",
                    bins[i], low[i], high[i]
                ),
            });
        }
        Ok(Self { bins, low, high })
    }
}

impl<O: AsRef<[f32]>> Discretize<O> for BoxDiscretizer {
    fn n_states(&self) -> usize {
        self.bins.iter().product()
    }

    fn index(&self, obs: &O) -> usize {
        let obs = obs.as_ref();
        let mut index = 0;
        for (i, &n) in self.bins.iter().enumerate() {
            let value = obs.get(i).copied().unwrap_or(0.0);
            let fraction = (value - self.low[i]) / (self.high[i] - self.low[i]);
            // NaN and values below low land in bin 0, values above high in the last.
            let bin = if fraction.is_nan() { 0 } else { ((fraction * n as f32) as usize).min(n - 1) };
            index = index * n + bin;
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_numbered_row_major_and_clipped() {
        let d = BoxDiscretizer::new(vec![2, 3], vec![0.0, 0.0], vec![1.0, 3.0]).unwrap();
        assert_eq!(Discretize::<[f32; 2]>::n_states(&d), 6);
        assert_eq!(d.index(&[0.1f32, 0.5]), 0);
        assert_eq!(d.index(&[0.1f32, 2.5]), 2);
        assert_eq!(d.index(&[0.9f32, 1.5]), 4);
        assert_eq!(d.index(&[-5.0f32, 9.0]), 2, "clipped to the end bins");
        assert_eq!(d.index(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn bad_bins_are_errors() {
        assert!(BoxDiscretizer::new(vec![2], vec![0.0, 0.0], vec![1.0, 1.0]).is_err());
        let err = BoxDiscretizer::new(vec![2, 0], vec![0.0, 0.0], vec![1.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("dimension 1"), "{err}");
    }
}
