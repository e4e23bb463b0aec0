use super::*;

use crate::store::server_secrets::*;

impl ServerSecrets for Backend {
    #[tracing::instrument(skip_all, fields(name = %name))]
    async fn server_secret(&self, name: &str) -> StoreResult<Vec<u8>> {
        sqlx::query(INSERT_SECRET)
            .bind(name)
            .bind(new_secret()?)
            .bind(Utc::now())
            .execute(self.writer())
            .await?;
        let value: String = sqlx::query_scalar(SELECT_SECRET)
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        decode(name, &value)
    }
}
