//! Environment ids, as users type them on the command line.

use std::fmt;
use std::str::FromStr;

use crate::error::EnvError;

/// An environment that can be named by a string, like `gymnasium.make`'s ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EnvId {
    /// `CartPole-v1` (alias `cartpole`): [`crate::CartPole::v1`].
    CartPoleV1,
}

impl EnvId {
    /// Every id with its accepted spellings (matched case-insensitively).
    pub const ALL: &'static [(EnvId, &'static [&'static str])] = &[(EnvId::CartPoleV1, &["CartPole-v1", "cartpole"])];

    /// The canonical name, e.g. `"CartPole-v1"`.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(id, _)| *id == self).map_or("?", |(_, names)| names[0])
    }
}

impl FromStr for EnvId {
    type Err = EnvError;

    fn from_str(text: &str) -> Result<Self, EnvError> {
        let wanted = text.trim();
        Self::ALL
            .iter()
            .find(|(_, names)| names.iter().any(|name| name.eq_ignore_ascii_case(wanted)))
            .map(|(id, _)| *id)
            .ok_or_else(|| EnvError::UnknownEnv {
                id: text.to_owned(),
                known: Self::ALL.iter().flat_map(|(_, names)| names.iter().copied()).collect::<Vec<_>>().join(", "),
            })
    }
}

impl fmt::Display for EnvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
    fn unknown_id_lists_the_known_ones() {
        let err = "pendulum".parse::<EnvId>().unwrap_err();
        assert_eq!(err.to_string(), "unknown environment `pendulum`; known environments: CartPole-v1, cartpole");
    }
}
