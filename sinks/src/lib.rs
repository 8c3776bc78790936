//! Where results go: events for SIEMs and reports for people.
//!
//! `events` builds the NDJSON events of DESIGN.md §4 as typed views that borrow the handshake and
//! its enrichment; `ndjson` writes them one per line; `report` renders the inventory as a self-contained HTML page or a
//! Graphviz graph.
#![forbid(unsafe_code)]

pub mod certstore;
pub mod community_id;
pub mod events;
pub mod ndjson;
pub mod report;

pub use ndjson::EventSink;
