//! Environment ids, as users type them on the command line.

use std::fmt;
use std::str::FromStr;

use crate::error::EnvError;

/// An environment that can be named by a string, like `gymnasium.make`'s ids.
/// Parameterised environments take their size after a colon: `bitflip:30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EnvId {
    /// `CartPole-v1` (alias `cartpole`): [`crate::CartPole::v1`].
    CartPoleV1,
    /// `bitflip:N` (N bits, default 10): [`crate::BitFlipping`].
    BitFlipping {
        /// Number of bits.
        n_bits: usize,
    },
    /// `fourrooms:S` (an S × S grid, default 11): [`crate::FourRooms`].
    FourRooms {
        /// Side of the grid.
        size: usize,
    },
}

/// Accepted spellings (case-insensitive), for parameterised ids the default
/// parameter, and how the id is built from the parameter.
type Entry = (&'static [&'static str], Option<usize>, fn(usize) -> EnvId);
const NAMES: &[Entry] = &[
    (&["CartPole-v1", "cartpole"], None, |_| EnvId::CartPoleV1),
    (&["bitflip", "BitFlipping"], Some(10), |n_bits| EnvId::BitFlipping { n_bits }),
    (&["fourrooms"], Some(11), |size| EnvId::FourRooms { size }),
];

impl EnvId {
    /// The canonical name, e.g. `"CartPole-v1"` or `"bitflip:30"`; it parses back to the same id.
    pub fn name(self) -> String {
        match self {
            EnvId::CartPoleV1 => "CartPole-v1".to_owned(),
            EnvId::BitFlipping { n_bits } => format!("bitflip:{n_bits}"),
            EnvId::FourRooms { size } => format!("fourrooms:{size}"),
        }
    }

    /// Whether the environment is goal-conditioned (hindsight replay applies).
    pub fn is_goal_env(self) -> bool {
        !matches!(self, EnvId::CartPoleV1)
    }

    fn known() -> String {
        NAMES
            .iter()
            .flat_map(|(names, param, _)| {
                names.iter().map(move |n| if param.is_some() { format!("{n}:N") } else { (*n).to_owned() })
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromStr for EnvId {
    type Err = EnvError;

    fn from_str(text: &str) -> Result<Self, EnvError> {
        let wanted = text.trim();
        let (name, param) = match wanted.split_once(':') {
            Some((name, param)) => (name, Some(param)),
            None => (wanted, None),
        };
        let unknown = || EnvError::UnknownEnv { id: text.to_owned(), known: Self::known() };
        let (_, default, build) = NAMES
            .iter()
            .find(|(names, _, _)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .ok_or_else(unknown)?;
        let value = match (param, default) {
            (None, default) => default.unwrap_or(0),
            (Some(_), None) => return Err(unknown()),
            (Some(param), Some(_)) => param.trim().parse::<usize>().map_err(|_| EnvError::InvalidConfig {
                field: "env",
                reason: format!("`{text}`: the size after `:` must be a whole number, got `{param}`"),
            })?,
        };
        Ok(build(value))
    }
}

impl fmt::Display for EnvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases_case_insensitively() {
        for text in ["CartPole-v1", "cartpole", "CARTPOLE", " cartpole-v1 "] {
            assert_eq!(text.parse::<EnvId>().unwrap(), EnvId::CartPoleV1, "{text}");
        }
        assert_eq!(EnvId::CartPoleV1.to_string(), "CartPole-v1");
    }

    #[test]
    fn parameterised_ids_parse_with_defaults_and_round_trip() {
        assert_eq!("bitflip:30".parse::<EnvId>().unwrap(), EnvId::BitFlipping { n_bits: 30 });
        assert_eq!("BitFlipping".parse::<EnvId>().unwrap(), EnvId::BitFlipping { n_bits: 10 });
        assert_eq!("fourrooms".parse::<EnvId>().unwrap(), EnvId::FourRooms { size: 11 });
        for id in [EnvId::CartPoleV1, EnvId::BitFlipping { n_bits: 64 }, EnvId::FourRooms { size: 21 }] {
            assert_eq!(id.name().parse::<EnvId>().unwrap(), id);
        }
        assert!(EnvId::BitFlipping { n_bits: 3 }.is_goal_env() && !EnvId::CartPoleV1.is_goal_env());
    }

    #[test]
    fn unknown_ids_and_bad_sizes_are_errors_naming_the_problem() {
        let err = "pendulum".parse::<EnvId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment `pendulum`; known environments: CartPole-v1, cartpole, bitflip:N, BitFlipping:N, fourrooms:N"
        );
        let err = "bitflip:many".parse::<EnvId>().unwrap_err();
        assert!(err.to_string().contains("must be a whole number, got `many`"), "{err}");
        assert!(matches!("cartpole:3".parse::<EnvId>(), Err(EnvError::UnknownEnv { .. })));
    }
}
