//! People who use the web workbench: accounts with a role, and their login sessions. The store
//! keeps only a password hash (computed by the caller, argon2 in the workbench) and a hash of
//! each session token, so a copy of the database lets nobody log in.

use crate::error::ValidationError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// What a person may do in the workbench. Each role can do everything the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Labels tickets: the review queue, the ticket browser, the dashboard.
    #[serde(rename = "labeler")]
    Labeler,
    /// Also promotes and rolls back model versions.
    #[serde(rename = "ml-engineer")]
    MlEngineer,
    /// Also edits the taxonomy and manages users.
    #[serde(rename = "admin")]
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::MlEngineer, Role::Labeler];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::MlEngineer => "ml-engineer",
            Self::Labeler => "labeler",
        }
    }

    /// Whether this role includes everything `other` may do.
    pub fn includes(self, other: Role) -> bool {
        self >= other
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Self::Admin),
            "ml-engineer" => Ok(Self::MlEngineer),
            "labeler" => Ok(Self::Labeler),
            other => Err(format!(
                "unknown role {other:?} (expected admin, ml-engineer or labeler)"
            )),
        }
    }
}

/// A login name: 1 to 64 letters, digits and `.`, `_`, `-`, `@`; unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_USERNAME_CHARS {
            return Err(ValidationError::field(
                "username",
                format!("must be 1 to {MAX_USERNAME_CHARS} characters"),
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
        {
            return Err(ValidationError::field(
                "username",
                format!("may not contain {bad:?} (letters, digits, '.', '_', '-', '@' only)"),
            ));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key uniqueness and lookups use, so `Alice` and `alice` are one account.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for Username {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, ValidationError> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> String {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored account, without its password hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An account as it is created; `password_hash` is a PHC string (argon2 in the workbench).
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub username: Username,
    pub role: Role,
    pub password_hash: String,
}

/// What a login needs: the account and the hash to check the password against.
#[derive(Debug, Clone, PartialEq)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

/// A login session; the store knows it by the hash of its token only.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: User,
    /// The token every form of this session must carry (compared on each POST).
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A session being opened.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    pub user_id: i64,
    /// SHA-256 (hex) of the cookie's token.
    pub token_hash: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_order_by_power() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!(Role::Admin.includes(Role::MlEngineer));
        assert!(Role::MlEngineer.includes(Role::Labeler));
        assert!(!Role::Labeler.includes(Role::MlEngineer));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn usernames_reject_spaces_markup_and_empty() {
        assert!(Username::parse("alice.b-c_d@x").is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("<script>").is_err());
        assert_eq!(Username::parse("Alice").unwrap().folded(), "alice");
    }
}
