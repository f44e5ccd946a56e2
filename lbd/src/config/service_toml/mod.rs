//! A fast reader for the tables of one service, as services are written: `[service.NAME]`
//! with `key = value` lines, then `[[service.NAME.real]]` tables; strings, decimal integers,
//! booleans, arrays and one-line inline tables. It gives the same values and spans as the
//! toml crate, without its event stream and maps, which made parsing most of the cost of
//! validating a large config (page faults and allocations weigh even more on an emulated
//! CPU). Everything else (other headers, dotted keys, floats, dates, multi-line strings...)
//! and anything TOML refuses makes it answer `None`; the validator then reads the whole file
//! with the toml crate, whose messages say what is wrong and where.
//!
//! [`de`] deserializes its values like `toml::de::ValueDeserializer`: same visits, same
//! spans, so the schema types come out the same. It stops at the first error, which also
//! sends the validator to the toml crate.

pub mod de;
mod parse;

pub use parse::{service, service_run};
use std::borrow::Cow;
use std::ops::Range;

/// A value with its span in the config text (quotes and brackets included, as the toml
/// crate spans it).
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'i> {
    pub span: Range<usize>,
    pub value: Value<'i>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'i> {
    Str(Cow<'i, str>),
    Int(i64),
    Bool(bool),
    Array(Vec<Node<'i>>),
    /// In the order written; keys are unique.
    Table(Vec<Entry<'i>>),
}

/// A key of a table and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'i> {
    pub key: Cow<'i, str>,
    pub key_span: Range<usize>,
    pub value: Node<'i>,
}

/// One service's tables.
#[derive(Debug)]
pub struct ServiceText<'i> {
    /// NAME, and its span in the first header.
    pub name: Cow<'i, str>,
    pub name_span: Range<usize>,
    /// The keys of `[service.NAME]`.
    pub keys: Vec<Entry<'i>>,
    /// Each `[[service.NAME.real]]`, in order.
    pub reals: Vec<RealText>,
    /// The keys of all the reals, one real after the other (one vector rather than one per
    /// real: a large file has tens of thousands of reals).
    pub real_keys: Vec<Entry<'i>>,
}

/// One `[[service.NAME.real]]` of a [`ServiceText`].
#[derive(Debug, Clone, PartialEq)]
pub struct RealText {
    /// Its header, which the toml crate gives as the table's span.
    pub span: Range<usize>,
    /// Where its keys are in [`ServiceText::real_keys`].
    pub keys: Range<usize>,
}

impl<'i> ServiceText<'i> {
    /// The keys of `real`, one of `self.reals`.
    pub fn keys_of(&self, real: &RealText) -> &[Entry<'i>] {
        &self.real_keys[real.keys.clone()]
    }
}

#[cfg(test)]
mod tests;
