//! Seeded, portable randomness for environments.
//!
//! Environments own an [`EnvRng`] (PCG-64, as numpy's default generator uses)
//! seeded with [`seeded_rng`]. PCG-64 and `seed_from_u64` are value-stable
//! across platforms and `rand_pcg` releases, and floats are drawn by
//! [`uniform_f64`], whose arithmetic is fixed here rather than left to a
//! sampling algorithm that a future `rand` might change. Together these make
//! "same seed, same trajectory" hold on every machine.

use rand::{Rng, SeedableRng};

/// The random number generator every environment owns.
pub type EnvRng = rand_pcg::Pcg64;

/// A generator seeded from a `u64`.
pub fn seeded_rng(seed: u64) -> EnvRng {
    EnvRng::seed_from_u64(seed)
}

/// A float uniform in `[low, high)`: 53 random bits scaled to `[0, 1)`, then
/// mapped affinely onto the interval.
pub fn uniform_f64<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    let unit = (rng.next_u64() >> 11) as f64 * SCALE;
    low + (high - low) * unit
}

/// An integer uniform in `0..n`, by Lemire's multiply-and-reject method, so
/// it is unbiased and its values are fixed by this code alone. `n` of 0 or 1
/// gives 0 without drawing.
pub fn uniform_index<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n = n as u64;
    let threshold = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        if (product as u64) >= threshold {
            return (product >> 64) as usize;
        }
    }
}

/// A standard normal draw (Box–Muller), used to sample unbounded box dimensions.
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - uniform_f64(rng, 0.0, 1.0);
    let u2 = uniform_f64(rng, 0.0, 1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_f64_stays_in_range_and_covers_it() {
        let mut rng = seeded_rng(7);
        let draws: Vec<f64> = (0..10_000).map(|_| uniform_f64(&mut rng, -0.05, 0.05)).collect();
        assert!(draws.iter().all(|v| (-0.05..0.05).contains(v)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        // Standard error of the mean of U(-0.05, 0.05) over 10^4 draws is 2.9e-4.
        assert!(mean.abs() < 1.5e-3, "mean {mean}");
        assert!(draws.iter().any(|&v| v < -0.049) && draws.iter().any(|&v| v > 0.049));
    }

    #[test]
    fn uniform_index_is_unbiased_enough() {
        let mut rng = seeded_rng(3);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[uniform_index(&mut rng, 3)] += 1;
        }
        // Each count is Binomial(30000, 1/3): sd ≈ 82.
        assert!(counts.iter().all(|&c| (9_600..10_400).contains(&c)), "{counts:?}");
    }

    #[test]
    fn standard_normal_has_unit_moments() {
        let mut rng = seeded_rng(11);
        let n = 20_000;
        let draws: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
    }

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = seeded_rng(5);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = seeded_rng(5);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
    }
}
