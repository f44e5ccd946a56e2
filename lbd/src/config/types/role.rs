//! Roles of the control API's callers (`[node.api]`).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// What a caller of the control API may do. Ordered: each role may do what the ones below it
/// may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Nothing: every request is refused (written `none`).
    #[serde(rename = "none")]
    Denied,
    /// Status, metrics, events.
    #[default]
    Reader,
    /// And drain, undrain, reload.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Denied, Role::Reader, Role::Operator, Role::Admin];

    /// The name written in the config and shown by the API.
    pub fn name(self) -> &'static str {
        match self {
            Role::Denied => "none",
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may make a request that needs `needed`.
    pub fn may(self, needed: Role) -> bool {
        self != Role::Denied && self >= needed
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown role {s:?}: use reader, operator or admin (or none: no access)")
            })
    }
}
deserialize_via_from_str!(Role, "a role: reader, operator, admin or none");

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}
