//! Workbench accounts and login sessions. Their SQL is in `sql/users.rs`.

use super::capability::store_capability;
use crate::error::StoreResult;

store_capability! {
    /// Accounts and sessions of the web workbench.
    pub trait UserStore {
        /// Creates an account; the password hash is computed by the caller.
        async fn create_user(&self, user: &crate::user::NewUser) -> StoreResult<crate::user::User>;
        /// The account and its password hash, for a login.
        async fn user_credentials(
            &self,
            username: &crate::user::Username,
        ) -> StoreResult<Option<crate::user::UserCredentials>>;
        /// Every account, by name.
        async fn users(&self) -> StoreResult<Vec<crate::user::User>>;
        async fn set_user_role(
            &self,
            user: i64,
            role: crate::user::Role,
        ) -> StoreResult<crate::user::User>;
        /// Replaces the password hash and ends the user's sessions.
        async fn set_user_password(&self, user: i64, password_hash: &str) -> StoreResult<()>;
        /// Opens a session (and deletes expired ones).
        async fn create_session(&self, session: &crate::user::NewSession) -> StoreResult<()>;
        /// The live session whose token hashes to `token_hash`.
        async fn session(
            &self,
            token_hash: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> StoreResult<Option<crate::user::Session>>;
        async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    }
}
