//! Help-desk connectors: what Zendesk, Jira and ServiceNow send us, turned into our types, and
//! our tag names turned into theirs. Parsing is liberal (unknown fields, nulls, numbers as
//! floats or strings, ids as strings or integers); signatures are strict. Nothing here talks to
//! a database or the network: the workbench stores and serves, this crate translates.

mod adf;
mod backfill;
mod delivery;
mod jira;
mod lenient;
mod servicenow;
mod signature;
mod system;
mod tag_mapping;
mod writeback;
mod zendesk;

pub use backfill::{PAGE_SIZE, Page, page_request, parse_page};
pub use delivery::{
    Delivery, EventKind, IncomingTicket, ParseError, dedupe_key, importable_fields, parse_delivery,
};
pub use servicenow::parse_records as parse_servicenow_records;
pub use signature::{
    SERVICENOW_SIGNATURE_HEADER, SERVICENOW_TIMESTAMP_HEADER, SignatureError, sign_jira,
    sign_outgoing, sign_servicenow, sign_zendesk, verify_signature,
};
pub use system::{System, UnknownSystem};
pub use tag_mapping::{LabelMapping, vendor_label};
pub use writeback::{
    DEFAULT_SERVICENOW_FIELD, MAX_RETRY_AFTER, Method, ServiceNowTarget, TokenBucket, WriteOutcome,
    WriteRequest, authorization, classify_response, fetch_ticket_path, probe_request, vendor_error,
    write_request,
};
pub use zendesk::parse_rest_ticket as parse_zendesk_rest_ticket;
