//! Typed identifiers, so a ticket id can never be passed where a tag id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A project: one company's or team's space with its own taxonomy.
    ProjectId
);
id_type!(
    /// A tag in a project's taxonomy.
    TagId
);
id_type!(
    /// A group of tags in a project's taxonomy (Type, Priority, Topics).
    TagGroupId
);
id_type!(
    /// A stored ticket.
    TicketId
);
id_type!(
    /// A trained, versioned model.
    ModelVersionId
);
id_type!(
    /// A training run (one queued training job and what came of it).
    TrainingRunId
);
id_type!(
    /// A connector to a help desk (Zendesk, Jira, ServiceNow).
    ConnectorId
);
id_type!(
    /// One webhook delivery a connector received.
    DeliveryId
);
id_type!(
    /// One write of our tags back to a help desk's ticket.
    WriteBackId
);
id_type!(
    /// A URL a project's events are sent to.
    WebhookId
);
id_type!(
    /// One event sent (or to send) to a webhook.
    WebhookDeliveryId
);
