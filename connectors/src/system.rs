//! The help-desk systems we connect to: a closed set, matched exhaustively everywhere.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A help-desk system a connector talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Zendesk,
    Jira,
    #[serde(rename = "servicenow")]
    ServiceNow,
}

impl System {
    /// Every system, in the order the CLI and the pages list them.
    pub const ALL: [System; 3] = [System::Zendesk, System::Jira, System::ServiceNow];

    /// The name stored and typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zendesk => "zendesk",
            Self::Jira => "jira",
            Self::ServiceNow => "servicenow",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A system name that is not one of [`System::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown system {0:?} (expected zendesk, jira or servicenow)")]
pub struct UnknownSystem(pub String);

impl FromStr for System {
    type Err = UnknownSystem;
    fn from_str(s: &str) -> Result<Self, UnknownSystem> {
        System::ALL
            .into_iter()
            .find(|system| system.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownSystem(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_round_trip_through_their_names() {
        for system in System::ALL {
            assert_eq!(system.as_str().parse::<System>(), Ok(system));
            assert_eq!(
                serde_json::to_value(system).unwrap_or_default(),
                serde_json::json!(system.as_str())
            );
        }
        assert_eq!("ServiceNow".parse::<System>(), Ok(System::ServiceNow));
        assert!("freshdesk".parse::<System>().is_err());
    }
}
