//! Cells of the benchmark tables: results over seeds as an interquartile
//! mean with its 95% interval, comparisons as a ratio or a probability
//! with theirs.

use rlhf_algo::stats::{Estimate, OverSeeds};

/// `value [low–high]` with `decimals` decimals, `-` for no estimate.
pub fn estimate_cell(estimate: Option<Estimate>, decimals: usize) -> String {
    estimate.map_or("-".into(), |e| format!("{:.decimals$} [{:.decimals$}–{:.decimals$}]", e.value, e.low, e.high))
}

/// A result over seeds: the IQM with its interval.
pub fn seeds_cell(over: &OverSeeds, decimals: usize) -> String {
    estimate_cell(over.iqm, decimals)
}

/// A ratio (e.g. a speed-up) as `12.3× [9.8–15.1]`.
pub fn ratio_cell(ratio: Option<Estimate>) -> String {
    ratio.map_or("-".into(), |e| format!("{:.1}× [{:.1}–{:.1}]", e.value, e.low, e.high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_value_and_interval() {
        let e = Estimate { value: 22_500.0, low: 17_500.0, high: 27_500.0 };
        assert_eq!(estimate_cell(Some(e), 0), "22500 [17500–27500]");
        assert_eq!(estimate_cell(None, 2), "-");
        assert_eq!(seeds_cell(&OverSeeds::new(&[0.5, 0.5]), 2), "0.50 [0.50–0.50]");
        assert_eq!(ratio_cell(Some(Estimate { value: 12.34, low: 9.81, high: 15.06 })), "12.3× [9.8–15.1]");
    }
}
