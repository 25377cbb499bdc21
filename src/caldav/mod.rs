//! CalDAV client.
pub mod auth;
