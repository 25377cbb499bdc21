//! calplanebot: keeps Plane work items and CalDAV calendars in sync.
//!
//! Layers, dependencies pointing down only:
//! `main` → `sync` → {`plane`, `caldav`} → {`ical`, `davxml`}; `state` is used by `sync`.

pub mod caldav;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod davxml;
pub mod feed;
pub mod http;
pub mod ical;
pub mod logging;
pub mod plane;
pub mod server;
pub mod state;
pub mod status;
pub mod sync;
pub mod tz;
