use super::*;

impl UserStore for Backend {
    async fn create_user(&self, user: &crate::user::NewUser) -> StoreResult<crate::user::User> {
        if user.password_hash.is_empty() {
            return Err(ValidationError::field("password", "no password hash given").into());
        }
        let row: crate::store::dashboard::UserRow = sqlx::query_as(
            "INSERT INTO users (username, username_key, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, username, role, created_at",
        )
        .bind(user.username.as_str())
        .bind(user.username.folded())
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(Utc::now())
        .fetch_one(self.writer())
        .await
        .map_err(|e| {
            conflict_on_unique(e, || {
                format!("a user named {:?} already exists", user.username.as_str())
            })
        })?;
        row.try_into()
    }

    async fn user_credentials(
        &self,
        username: &crate::user::Username,
    ) -> StoreResult<Option<crate::user::UserCredentials>> {
        let row: Option<crate::store::dashboard::CredentialsRow> = sqlx::query_as(
            "SELECT id, username, role, created_at, password_hash FROM users WHERE username_key = $1",
        )
        .bind(username.folded())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(crate::user::UserCredentials {
                user: row.user.try_into()?,
                password_hash: row.password_hash,
            })
        })
        .transpose()
    }

    async fn users(&self) -> StoreResult<Vec<crate::user::User>> {
        let rows: Vec<crate::store::dashboard::UserRow> = sqlx::query_as(
            "SELECT id, username, role, created_at FROM users ORDER BY username_key",
        )
        .fetch_all(&self.pool)
        .await?;
        convert_all(rows)
    }

    async fn set_user_role(
        &self,
        user: i64,
        role: crate::user::Role,
    ) -> StoreResult<crate::user::User> {
        let row: Option<crate::store::dashboard::UserRow> = sqlx::query_as(
            "UPDATE users SET role = $1 WHERE id = $2 RETURNING id, username, role, created_at",
        )
        .bind(role.as_str())
        .bind(user)
        .fetch_optional(self.writer())
        .await?;
        row.ok_or_else(|| StoreError::NotFound(format!("user {user}")))?
            .try_into()
    }

    async fn set_user_password(&self, user: i64, password_hash: &str) -> StoreResult<()> {
        if password_hash.is_empty() {
            return Err(ValidationError::field("password", "no password hash given").into());
        }
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user}")));
        }
        // A new password ends every session opened with the old one.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_session(&self, session: &crate::user::NewSession) -> StoreResult<()> {
        let now = Utc::now();
        // Expired sessions go whenever someone logs in, so the table never grows unbounded.
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.token_hash)
        .bind(session.user_id)
        .bind(&session.csrf_token)
        .bind(now)
        .bind(session.expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now: chrono::DateTime<Utc>,
    ) -> StoreResult<Option<crate::user::Session>> {
        let row: Option<crate::store::dashboard::SessionRow> = sqlx::query_as(
            "SELECT u.id, u.username, u.role, u.created_at, s.csrf_token, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(crate::user::Session {
                user: row.user.try_into()?,
                csrf_token: row.csrf_token,
                expires_at: row.expires_at,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
