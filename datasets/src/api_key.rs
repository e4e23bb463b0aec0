//! API keys. A key is shown once when created; the store keeps its prefix (to find it) and a
//! SHA-256 of the whole key (to check it). Keys carry 192 random bits, so a fast hash is
//! enough: there is nothing to brute-force that a slow hash would protect. A key is either
//! bound to one project with a set of scopes, or an instance-admin key that manages projects.

use crate::ids::ProjectId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Every key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "tt_";

/// What a project key may do; each API route inside a project needs exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Ingest tickets and tag texts with the model in service.
    Tag,
    /// List, show and search: tickets, taxonomy, models, runs, label quality.
    Read,
    /// Set labels, lease and release review-queue tickets, adjudicate.
    Label,
    /// Queue and cancel training runs, promote, roll back and evaluate models.
    Train,
    /// Edit the taxonomy and the project's review settings.
    Admin,
}

impl Scope {
    /// Every scope, in the order they are documented.
    pub const ALL: [Scope; 5] = [
        Scope::Tag,
        Scope::Read,
        Scope::Label,
        Scope::Train,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tag => "tag",
            Scope::Read => "read",
            Scope::Label => "label",
            Scope::Train => "train",
            Scope::Admin => "admin",
        }
    }

    /// One line on what the scope allows, for the CLI, the admin page and the docs.
    pub fn description(self) -> &'static str {
        match self {
            Scope::Tag => "ingest tickets and tag texts",
            Scope::Read => "list, show and search",
            Scope::Label => "label tickets, lease and release review work, adjudicate",
            Scope::Train => "train, evaluate, promote and roll back models; rescore the queue",
            Scope::Admin => "edit the taxonomy and review settings",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: use tag, read, label, train or admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(text: &str) -> Result<Self, UnknownScope> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownScope(text.trim().to_string()))
    }
}

/// The scopes of a project key; never empty for a stored project key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Every scope: what keys made before scopes existed were given.
    pub fn all() -> Self {
        Self(Scope::ALL.into_iter().collect())
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// `tag,read,label`: the stored form, and what `tagger keys create --scopes` takes.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for Scopes {
    type Err = UnknownScope;
    fn from_str(text: &str) -> Result<Self, UnknownScope> {
        text.split(',')
            .filter(|name| !name.trim().is_empty())
            .map(str::parse)
            .collect()
    }
}

/// What a key may act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KeyGrant {
    /// One project, within its scopes.
    Project {
        project_id: ProjectId,
        scopes: Scopes,
    },
    /// The instance: create and list projects; nothing inside a project.
    InstanceAdmin,
}

impl KeyGrant {
    /// The project the key is bound to; `None` for an instance-admin key.
    pub fn project_id(&self) -> Option<ProjectId> {
        match self {
            KeyGrant::Project { project_id, .. } => Some(*project_id),
            KeyGrant::InstanceAdmin => None,
        }
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: i64,
    pub grant: KeyGrant,
    pub name: String,
    /// The public part, shown in listings: `tt_<prefix>_…`.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Who acts when a request comes with this key, for labels, leases and histories.
    pub fn actor(&self) -> String {
        format!("api-key:{}", self.name)
    }
}

/// A key just created: the only time its full text exists outside the client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// A fresh key's text and its lookup prefix.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut prefix = [0u8; 4];
    let mut secret = [0u8; 24];
    getrandom::fill(&mut prefix)?;
    getrandom::fill(&mut secret)?;
    let prefix = hex(&prefix);
    Ok((format!("{KEY_PREFIX}{prefix}_{}", hex(&secret)), prefix))
}

/// The prefix of a key as a client sends it, if it has our shape.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 8 && secret.len() == 48).then_some(prefix)
}

pub fn hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Compares two hashes in time that does not depend on where they differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_our_shape_and_differ() {
        let (a, prefix) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(prefix_of(&a), Some(prefix.as_str()));
        assert!(a.starts_with("tt_"));
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for key in [
            "",
            "tt_",
            "tt_abc_def",
            "xx_12345678_000000000000000000000000000000000000000000000000",
            "Bearer tt_1",
        ] {
            assert_eq!(prefix_of(key), None, "{key}");
        }
    }

    #[test]
    fn scopes_read_and_write_their_stored_form() {
        let scopes: Scopes = "read, TAG,label".parse().unwrap();
        assert_eq!(scopes.to_string(), "tag,read,label");
        assert!(scopes.contains(Scope::Read) && !scopes.contains(Scope::Admin));
        assert_eq!(Scopes::all().to_string(), "tag,read,label,train,admin");
        assert_eq!("".parse::<Scopes>().unwrap(), Scopes::default());
        assert_eq!(
            "read,write".parse::<Scopes>(),
            Err(UnknownScope("write".into()))
        );
    }

    #[test]
    fn hashes_compare_exactly() {
        assert!(hashes_match(&hash("tt_a"), &hash("tt_a")));
        assert!(!hashes_match(&hash("tt_a"), &hash("tt_b")));
        assert!(!hashes_match("ab", "abc"));
    }
}
