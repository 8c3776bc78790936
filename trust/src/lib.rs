//! What a presented chain is anchored to, and what is wrong with it.
//!
//! `anchors` holds the trust stores: the built-in Mozilla (NSS) and Chrome root stores, user
//! anchors (`--anchors`), and known CAs that are not anchors (distrusted roots) so chain building
//! can still name them. `chain` builds the paths from a presented chain to those anchors (by name
//! and key id, with signatures checked). `findings` turns a built chain into the policy findings of
//! DESIGN.md §4 (expiry, weak keys, lifetimes, term limits, ...). Removal rules live in `rules`; the
//! stage that joins them with chains is `enrich`.
#![forbid(unsafe_code)]

pub mod anchors;
pub mod chain;
pub mod findings;

pub use anchors::TrustStores;
pub use chain::ChainResult;
