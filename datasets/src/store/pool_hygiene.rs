//! Which connections go back to the pool after use. A connection handed back still counting
//! an open transaction is closed instead: SQLite rolls a transaction back by itself on some
//! errors (disk full, I/O errors), so the `ROLLBACK` sqlx sends when the failed transaction
//! is dropped fails too, and sqlx keeps counting the transaction as open. Reused, such a
//! connection refused every later transaction ("attempted to call begin_with at non-zero
//! transaction depth") until the process restarted, long after the disk had room again.

use sqlx::Connection;

/// Answers whether `connection` may serve another caller (`after_release`). The ping goes
/// through the connection's command queue after the rollback its dropped transaction
/// queued, so the depth read afterwards is the one that rollback left.
pub(super) async fn fit_for_reuse<C: Connection>(connection: &mut C) -> Result<bool, sqlx::Error> {
    connection.ping().await?;
    let fit = !connection.is_in_transaction();
    if !fit {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(fit)
}
