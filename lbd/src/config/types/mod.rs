//! Value types of the config language: each parses from the text an operator writes and says
//! what would be right when it cannot. `toml` attaches the value's line and column to these
//! errors, so a bad scheduler name or port is reported where it was written.

/// Implements `Deserialize` through `FromStr` so the parse error becomes a spanned toml error.
/// Defined before the modules that use it (macro scope is textual); paths are absolute so
/// they need no imports.
macro_rules! deserialize_via_from_str {
    ($ty:ty, $expecting:literal) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

mod address;
mod check;
mod duration;
mod ipvs;
mod log;
mod role;

pub use address::*;
pub use check::*;
pub use duration::*;
pub use ipvs::*;
pub use log::*;
pub use role::*;

#[cfg(test)]
mod tests;
