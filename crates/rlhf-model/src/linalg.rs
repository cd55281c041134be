//! Dense matrix products on row-major `f32` slices, through `ndarray`
//! (`matrixmultiply`'s run-time-dispatched SIMD kernels): what host-memory
//! models (the sentence encoder's transformer) multiply with.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::ModelError;

/// How the right-hand matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[k, n]` row-major: `out = a · b`.
    KByN,
    /// `[n, k]` row-major (PyTorch's `Linear` weight): `out = a · bᵀ`.
    NByK,
}

/// `out = a · b (+ out when accumulate)`, `a` `[m, k]`, `out` `[m, n]`, all row-major.
pub fn matmul(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    [m, k, n]: [usize; 3],
    layout: Layout,
    accumulate: bool,
) -> Result<(), ModelError> {
    let shape = |what, len: usize, rows: usize, cols: usize| {
        if len == rows * cols {
            Ok(())
        } else {
            Err(ModelError::ShapeMismatch { what, expected: rows * cols, found: len })
        }
    };
    shape("left matrix", a.len(), m, k)?;
    shape("right matrix", b.len(), k, n)?;
    shape("product", out.len(), m, n)?;
    let bad = |_| ModelError::ShapeMismatch { what: "matrix view", expected: 0, found: 0 };
    let a = ArrayView2::from_shape((m, k), a).map_err(bad)?;
    let mut c = ArrayViewMut2::from_shape((m, n), out).map_err(bad)?;
    let beta = if accumulate { 1.0 } else { 0.0 };
    match layout {
        Layout::KByN => general_mat_mul(1.0, &a, &ArrayView2::from_shape((k, n), b).map_err(bad)?, beta, &mut c),
        Layout::NByK => general_mat_mul(1.0, &a, &ArrayView2::from_shape((n, k), b).map_err(bad)?.t(), beta, &mut c),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_by_hand() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50].
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
        let mut out = [0.0; 4];
        matmul(&a, &b, &mut out, [2, 2, 2], Layout::KByN, false).unwrap();
        assert_eq!(out, [19.0, 22.0, 43.0, 50.0]);
        // a · bᵀ = [1·5+2·6, 1·7+2·8; 3·5+4·6, 3·7+4·8] = [17 23; 39 53], added to the previous.
        matmul(&a, &b, &mut out, [2, 2, 2], Layout::NByK, true).unwrap();
        assert_eq!(out, [36.0, 45.0, 82.0, 103.0]);
        assert!(matmul(&a, &b, &mut out, [2, 3, 2], Layout::KByN, false).is_err());
    }
}
