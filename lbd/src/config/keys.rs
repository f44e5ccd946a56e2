//! Every key the config language accepts, section by section, read from the schema types
//! themselves: serde hands a struct's field names (after renames) to `deserialize_struct`, and
//! a deserializer that only records them gives the list without a value of the type. A key
//! added to a schema struct appears here by itself; a new kind of table (a new schema struct)
//! needs its line in [`known_keys`]. The reference (CONFIG.md) is tested against this list.

use super::schema::*;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;

/// The sections of a config and the keys each accepts, in the schema's field order.
///
/// Paths are written as operators write the table headers (`vrrp.instance.NAME`,
/// `service.NAME.real` for `[[service.NAME.real]]`). A check table (`[check.NAME]`, a service's
/// inline `check = { ... }`, a real's `check = { ... }`) has the keys of `check.NAME`.
/// `node.sysctl`, `node.api.uid`, `node.api.gid` and `node.api.tls.clients` are free-form
/// (sysctl names, ids, certificate names) and not listed.
pub fn known_keys() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut service = fields_of::<ServiceSchema>();
    // `real` is taken out of the service table before it is deserialized (each real is read
    // on its own), so it is not a field of ServiceSchema.
    service.push("real");
    let mut network = fields_of::<NetworkSchema>();
    // Links and rules are read one by one before the rest of [network] is deserialized.
    network.extend(["link", "rule"]);
    let mut bgp = fields_of::<BgpSchema>();
    // Peers are read one by one before the rest of [bgp] is deserialized.
    bgp.push("peer");
    vec![
        ("node", fields_of::<NodeSchema>()),
        ("node.syslog", fields_of::<SyslogSchema>()),
        ("release", fields_of::<ReleaseSchema>()),
        ("node.api", fields_of::<ApiSchema>()),
        ("node.api.tls", fields_of::<ApiTlsSchema>()),
        ("network", network),
        ("network.link.NAME", fields_of::<LinkSchema>()),
        ("network.link.NAME.match", fields_of::<MatchSchema>()),
        ("network.link.NAME.route", fields_of::<RouteSchema>()),
        ("network.rule", fields_of::<RuleSchema>()),
        ("ipvs", fields_of::<IpvsSchema>()),
        ("ipvs.timeouts", fields_of::<TimeoutsSchema>()),
        ("ipvs.sync", fields_of::<SyncSchema>()),
        ("bgp", bgp),
        ("bgp.peer.NAME", fields_of::<BgpPeerSchema>()),
        ("vrrp.instance.NAME", fields_of::<VrrpInstanceSchema>()),
        ("vrrp.sync_group.NAME", fields_of::<SyncGroupSchema>()),
        ("check.NAME", fields_of::<CheckSchema>()),
        ("service.NAME", service),
        ("service.NAME.persistence", fields_of::<PersistenceSchema>()),
        ("service.NAME.quorum", fields_of::<QuorumSchema>()),
        ("service.NAME.real", fields_of::<RealSchema>()),
    ]
}

/// The field names serde's derive gives `T` (`#[serde(rename)]` applied).
fn fields_of<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    match T::deserialize(FieldNames) {
        Err(Found(fields)) => fields.to_vec(),
        Ok(_) => unreachable!("FieldNames produces no value"),
    }
}

/// A deserializer that produces nothing and reports the field list it is asked for.
struct FieldNames;

#[derive(Debug)]
struct Found(&'static [&'static str]);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "fields {:?}", self.0)
    }
}

impl std::error::Error for Found {}

impl de::Error for Found {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Found(&[])
    }
}

impl<'de> Deserializer<'de> for FieldNames {
    type Error = Found;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
        Err(Found(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Found> {
        Err(Found(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_schema_with_renames() {
        let keys = known_keys();
        let of = |section: &str| {
            keys.iter()
                .find(|(s, _)| *s == section)
                .map(|(_, k)| k.clone())
                .unwrap_or_default()
        };
        // `kind` is renamed to `type`.
        assert!(of("check.NAME").contains(&"type"));
        assert!(!of("check.NAME").contains(&"kind"));
        assert!(of("service.NAME").contains(&"real"));
        assert_eq!(of("ipvs.timeouts"), ["tcp", "tcp_fin", "udp"]);
        assert!(keys.iter().all(|(_, k)| !k.is_empty()));
    }
}
