use super::*;
use crate::store::dashboard::*;

impl DashboardStore for Backend {
    async fn tag_counts(
        &self,
        project: ProjectId,
    ) -> StoreResult<Vec<crate::store::dashboard::TagCount>> {
        dialect::fold_count_changes(&self.pool, project).await?;
        let sql = format!(
            "SELECT g.id AS tag_id, g.name, g.color, g.archived, COALESCE(c.tickets, 0) AS tickets \
             FROM tags g LEFT JOIN (SELECT tag_id, CAST(SUM(tickets) AS BIGINT) AS tickets FROM {} c \
             WHERE project_id = $1 GROUP BY tag_id) c ON c.tag_id = g.id \
             WHERE g.project_id = $1 ORDER BY tickets DESC, g.name_key",
            dialect::TAG_DAY_COUNTS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn tag_volume(
        &self,
        project: ProjectId,
        from: chrono::DateTime<Utc>,
        until: chrono::DateTime<Utc>,
    ) -> StoreResult<Vec<crate::store::dashboard::TagVolume>> {
        dialect::fold_count_changes(&self.pool, project).await?;
        let (first, end) = crate::store::dashboard::day_range(from, until);
        let sql = format!(
            "SELECT day, tag_id, CAST(SUM(tickets) AS BIGINT) AS tickets FROM {} c \
             WHERE project_id = $1 AND day >= $2 AND day < $3 \
             GROUP BY day, tag_id HAVING SUM(tickets) <> 0 ORDER BY day, tag_id",
            dialect::TAG_DAY_COUNTS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .bind(first)
            .bind(end)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn tag_outcomes(
        &self,
        project: ProjectId,
    ) -> StoreResult<Vec<crate::store::dashboard::TagOutcome>> {
        dialect::fold_count_changes(&self.pool, project).await?;
        let sql = format!(
            "SELECT tag_id, CAST(SUM(auto_applied) AS BIGINT) AS auto_applied, \
             CAST(SUM(confirmed) AS BIGINT) AS confirmed, CAST(SUM(corrected) AS BIGINT) AS corrected \
             FROM {} c WHERE project_id = $1 GROUP BY tag_id HAVING SUM(auto_applied) > 0 ORDER BY tag_id",
            dialect::TAG_DAY_COUNTS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn labelling_totals(
        &self,
        project: ProjectId,
    ) -> StoreResult<crate::store::dashboard::LabellingTotals> {
        dialect::fold_count_changes(&self.pool, project).await?;
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(tickets), 0) AS BIGINT) AS tickets, \
             CAST(COALESCE(SUM(auto_tagged), 0) AS BIGINT) AS auto_tagged, \
             CAST(COALESCE(SUM(human_labelled), 0) AS BIGINT) AS human_labelled \
             FROM {} c WHERE project_id = $1",
            dialect::PROJECT_DAY_COUNTS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn labelling_totals_between(
        &self,
        project: ProjectId,
        from: chrono::DateTime<Utc>,
        until: chrono::DateTime<Utc>,
    ) -> StoreResult<crate::store::dashboard::LabellingTotals> {
        dialect::fold_count_changes(&self.pool, project).await?;
        let (first, end) = crate::store::dashboard::day_range(from, until);
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(tickets), 0) AS BIGINT) AS tickets, \
             CAST(COALESCE(SUM(auto_tagged), 0) AS BIGINT) AS auto_tagged, \
             CAST(COALESCE(SUM(human_labelled), 0) AS BIGINT) AS human_labelled \
             FROM {} c WHERE project_id = $1 AND day >= $2 AND day < $3",
            dialect::PROJECT_DAY_COUNTS
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .bind(first)
            .bind(end)
            .fetch_one(&self.pool)
            .await?)
    }

    #[tracing::instrument(skip_all, fields(project = %project))]
    async fn rebuild_dashboard_counts(&self, project: ProjectId) -> StoreResult<()> {
        self.project(project).await?;
        let mut tx = self.writer().begin_with(BEGIN_WRITE).await?;
        for statement in dialect::REBUILD_PREPARE {
            sqlx::query(sqlx::AssertSqlSafe(*statement))
                .bind(project)
                .execute(&mut *tx)
                .await?;
        }
        // The same recount as migration 0006: flags per (ticket, tag), summed per day.
        let day = dialect::DAY;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tag_day_counts (project_id, tag_id, day, tickets, auto_applied, confirmed, corrected) \
             SELECT t.project_id, k.tag_id, {day}, SUM(k.p * (1 - k.hr)), SUM(k.mp), SUM(k.mp * k.hp), SUM(k.mp * k.hr) \
             FROM (SELECT l.ticket_id, l.tag_id, \
               MAX(CASE WHEN l.present THEN 1 ELSE 0 END) AS p, \
               MAX(CASE WHEN l.source = 'human' AND NOT l.present THEN 1 ELSE 0 END) AS hr, \
               MAX(CASE WHEN l.source = 'human' AND l.present THEN 1 ELSE 0 END) AS hp, \
               MAX(CASE WHEN l.source = 'model' AND l.present THEN 1 ELSE 0 END) AS mp \
               FROM labels l WHERE l.tag_id IN (SELECT id FROM tags WHERE project_id = $1) \
               GROUP BY l.ticket_id, l.tag_id) k \
             JOIN tickets t ON t.id = k.ticket_id \
             GROUP BY t.project_id, k.tag_id, {day}"
        )))
        .bind(project)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO project_day_counts (project_id, day, tickets, auto_tagged, human_labelled) \
             SELECT t.project_id, {day}, COUNT(*), \
             SUM(CASE WHEN EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.source = 'model' AND l.present) THEN 1 ELSE 0 END), \
             SUM(CASE WHEN EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id AND l.source = 'human') THEN 1 ELSE 0 END) \
             FROM tickets t WHERE t.project_id = $1 GROUP BY t.project_id, {day}"
        )))
        .bind(project)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sample_texts(
        &self,
        project: ProjectId,
        sample: &TextSample,
    ) -> StoreResult<Vec<SampledText>> {
        // Walks the newest tickets of the period (tickets_project_created) and probes each
        // one's labels by the primary key; `With` starts from the tag's labels instead
        // (labels_tag_source), as a rare tag would otherwise walk the whole project.
        const SELECT: &str = "SELECT t.id, t.subject, t.body FROM tickets t \
             WHERE t.project_id = $1 AND t.created_at >= $2 AND t.created_at < $3";
        const ORDER: &str = " ORDER BY t.created_at DESC, t.id DESC LIMIT $4";
        const NOT_REMOVED: &str = "NOT EXISTS (SELECT 1 FROM labels h WHERE h.ticket_id = t.id \
             AND h.tag_id = $5 AND h.source = 'human' AND NOT h.present)";
        let (sql, tag) = match sample.tag {
            TagCondition::Any => (const_str::concat!(SELECT, ORDER), None),
            TagCondition::With(tag) => (
                const_str::concat!(
                    SELECT,
                    " AND t.id IN (SELECT l.ticket_id FROM labels l WHERE l.tag_id = $5 \
                     AND l.present) AND ",
                    NOT_REMOVED,
                    ORDER
                ),
                Some(tag),
            ),
            TagCondition::Without(tag) => (
                const_str::concat!(
                    SELECT,
                    " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.ticket_id = t.id \
                     AND l.tag_id = $5 AND l.present AND ",
                    NOT_REMOVED,
                    ")",
                    ORDER
                ),
                Some(tag),
            ),
        };
        let mut query = sqlx::query_as(sql)
            .bind(project)
            .bind(sample.from)
            .bind(sample.until)
            .bind(i64::from(sample.limit));
        if let Some(tag) = tag {
            query = query.bind(tag);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }
}
