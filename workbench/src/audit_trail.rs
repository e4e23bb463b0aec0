//! Writing the audit log for changes whose store call is not one transaction that knows its
//! actor (key, tag, account, connector and webhook changes): the entry is written right after
//! the change succeeded. Promotions, rollbacks and tag merges are recorded by the store in
//! their own transaction and never come here.

use datasets::store::prelude::*;
use datasets::tag::{Tag, TagUpdate};
use datasets::{
    Actor, AnyStore, AuditAction, AuditStore, KeyGrant, NewAuditEntry, ProjectId, Scope,
    StoreResult, TagGroup, TagGroupId, TagGroupName, TagId,
};
use serde_json::{Map, Value, json};

/// Records a change already made. A failure to record is logged as an error and does not
/// undo or fail the change: the client's request did succeed, and answering an error would
/// invite a retry that makes the change twice.
pub async fn record(
    store: &impl AuditStore,
    actor: &Actor,
    action: AuditAction,
    project: Option<ProjectId>,
    target: impl Into<String>,
    details: serde_json::Value,
) {
    let entry = NewAuditEntry::new(actor, action, project, target, details);
    if let Err(error) = store.record_audit(&entry).await {
        tracing::error!(
            %error,
            action = entry.action.as_str(),
            target = %entry.target,
            "the change was made but its audit log entry could not be written"
        );
    }
}

/// Changes a tag and records what changed: the one tag-edit path of the pages and the API.
/// The entry's action is the most telling change — a rename, new keyword rules, archiving,
/// or any other edit — and its details hold the old and new value of every changed field. A
/// save that changes nothing records nothing.
pub async fn update_tag(
    store: &AnyStore,
    actor: &Actor,
    project: ProjectId,
    tag: TagId,
    update: &TagUpdate,
) -> StoreResult<Tag> {
    let before = store
        .list_tags(project)
        .await?
        .into_iter()
        .find(|t| t.id == tag);
    let after = store.update_tag(project, tag, update).await?;
    if let Some(before) = before
        && let Some((action, details)) = tag_change(&before, &after)
    {
        record(
            store,
            actor,
            action,
            Some(project),
            tag_target(&after),
            details,
        )
        .await;
    }
    Ok(after)
}

fn tag_change(before: &Tag, after: &Tag) -> Option<(AuditAction, Value)> {
    let mut changed = Map::new();
    let mut note = |field: &str, old: Value, new: Value| {
        if old != new {
            changed.insert(field.into(), json!({ "from": old, "to": new }));
        }
    };
    note(
        "name",
        before.name.as_str().into(),
        after.name.as_str().into(),
    );
    note(
        "description",
        before.description.as_str().into(),
        after.description.as_str().into(),
    );
    note(
        "color",
        before.color.as_str().into(),
        after.color.as_str().into(),
    );
    note(
        "keywords",
        serde_json::to_value(&before.keywords).unwrap_or_default(),
        serde_json::to_value(&after.keywords).unwrap_or_default(),
    );
    note("archived", before.archived.into(), after.archived.into());
    note(
        "group_id",
        before.group_id.0.into(),
        after.group_id.0.into(),
    );
    let action = if changed.contains_key("name") {
        AuditAction::TagRename
    } else if changed.contains_key("keywords") {
        AuditAction::TagRules
    } else if changed.contains_key("archived") && after.archived {
        AuditAction::TagArchive
    } else if changed.is_empty() {
        return None;
    } else {
        AuditAction::TagUpdate
    };
    Some((action, Value::Object(changed)))
}

/// Renames a tag group and records it: the one rename path of the pages and the API.
pub async fn rename_tag_group(
    store: &AnyStore,
    actor: &Actor,
    project: ProjectId,
    group: TagGroupId,
    name: &TagGroupName,
) -> StoreResult<TagGroup> {
    let before = store
        .list_tag_groups(project)
        .await?
        .into_iter()
        .find(|g| g.id == group);
    let after = store.rename_tag_group(project, group, name).await?;
    if let Some(before) = before
        && before.name != after.name
    {
        record(
            store,
            actor,
            AuditAction::GroupRename,
            Some(project),
            group_target(&after),
            json!({ "name": { "from": before.name.as_str(), "to": after.name.as_str() } }),
        )
        .await;
    }
    Ok(after)
}

/// Deletes an empty tag group and records it: the one delete path of the pages and the API.
pub async fn delete_tag_group(
    store: &AnyStore,
    actor: &Actor,
    project: ProjectId,
    group: TagGroupId,
) -> StoreResult<TagGroup> {
    let deleted = store.delete_tag_group(project, group).await?;
    record(
        store,
        actor,
        AuditAction::GroupDelete,
        Some(project),
        group_target(&deleted),
        json!({ "name": deleted.name.as_str(), "choice": deleted.choice.as_str() }),
    )
    .await;
    Ok(deleted)
}

/// `group 3 "Priority"`.
pub fn group_target(group: &TagGroup) -> String {
    format!("group {} {:?}", group.id, group.name.as_str())
}

/// `tag 12 "Billing"`.
pub fn tag_target(tag: &Tag) -> String {
    format!("tag {} {:?}", tag.id, tag.name.as_str())
}

/// `key 7 "crm"`.
pub fn key_target(key: &datasets::ApiKey) -> String {
    format!("key {} {:?}", key.id, key.name)
}

/// An API key's grant for an entry's details (its id, name and scopes; never the secret).
pub fn key_details(key: &datasets::ApiKey) -> Value {
    let scopes: Vec<&str> = match &key.grant {
        KeyGrant::Project { scopes, .. } => scopes.iter().map(Scope::as_str).collect(),
        KeyGrant::InstanceAdmin => vec!["instance-admin"],
    };
    json!({ "id": key.id, "name": key.name, "prefix": key.prefix, "scopes": scopes })
}

/// The project a key belongs to (`None` for an instance-admin key).
pub fn key_project(key: &datasets::ApiKey) -> Option<ProjectId> {
    match &key.grant {
        KeyGrant::Project { project_id, .. } => Some(*project_id),
        KeyGrant::InstanceAdmin => None,
    }
}

/// Records a key just created (its grant, never its secret).
pub async fn key_created(store: &impl AuditStore, actor: &Actor, key: &datasets::ApiKey) {
    let (project, target, details) = (key_project(key), key_target(key), key_details(key));
    record(
        store,
        actor,
        AuditAction::KeyCreate,
        project,
        target,
        details,
    )
    .await;
}

/// Records a key just revoked.
pub async fn key_revoked(store: &impl AuditStore, actor: &Actor, key: &datasets::ApiKey) {
    let (project, target, details) = (key_project(key), key_target(key), key_details(key));
    record(
        store,
        actor,
        AuditAction::KeyRevoke,
        project,
        target,
        details,
    )
    .await;
}

/// Records a project just created with its tags.
pub async fn project_created(
    store: &impl AuditStore,
    actor: &Actor,
    project: &datasets::Project,
    tags: &[Tag],
) {
    let tag_names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    record(
        store,
        actor,
        AuditAction::ProjectCreate,
        Some(project.id),
        format!("project {} {:?}", project.id, project.name.as_str()),
        json!({ "label_mode": project.label_mode.as_str(), "tags": tag_names }),
    )
    .await;
}

/// `user 3 "ana"`.
pub fn user_target(id: i64, username: &str) -> String {
    format!("user {id} {username:?}")
}
