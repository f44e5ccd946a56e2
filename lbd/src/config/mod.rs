//! The config model shared by every crate: TOML schema, validation with spans, domain types.
//!
//! ```text
//! source text ──parse──▶ spanned tree ──per item──▶ schema types ──validate──▶ Config
//!                                   (all errors collected, each with file:line:col + help)
//! ```

pub mod diag;
pub mod keys;
pub mod layout;
mod loader;
pub mod model;
pub mod network;
pub mod pem;
pub mod schema;
pub mod service_toml;
pub mod suggest;
pub mod types;
mod validate;

pub use diag::{ConfigError, Diagnostic, Location, Severity};
pub use keys::known_keys;
pub use loader::{Loader, Validated};
pub use model::*;
pub use types::*;
pub use validate::{epoch_seconds, load, parse, valid_ifname, Loaded};
