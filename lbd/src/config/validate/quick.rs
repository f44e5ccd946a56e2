//! Stages 1 and 2 for a file of many services, at a cost that suits a thousand of them: each
//! `[service.NAME]` run of tables is read by [`crate::config::service_toml`] and deserialized
//! straight from the text, and only the rest of the file goes through the toml crate (the
//! services' text blanked out, so every span stays where it was).
//!
//! The result is the [`Raw`] that the toml crate's path gathers, for a file where that path
//! reports nothing: when anything is outside what the fast reader takes, or a part reports a
//! problem, the answer is `None` and the caller takes the toml crate's path for the whole file,
//! which says what is wrong and where, exactly as before.

use super::{valid_name, Raw, Validator};
use crate::config::layout::{self, Item, Segment};
use crate::config::schema::{RealSchema, ServiceSchema};
use crate::config::service_toml::{self, de, Entry, ServiceText, Value};
use crate::config::types::Endpoint;
use std::ops::Range;
use toml::de::DeTable;
use toml::Spanned;

/// See the module doc. Also gives the file's segments, which the loader keeps.
pub(super) fn gather(src: &str) -> Option<(Raw, Vec<Segment>)> {
    let mut segments = vec![Segment {
        item: Item::Preamble,
        range: 0..0,
    }];
    let mut services = Vec::new();
    // The layout reader goes over the other items; each service is read where it starts, by
    // the service reader, which says where it ends.
    let mut pos = 0;
    while let Some(start) = layout::next_service(src, pos, &mut segments)? {
        let (service, end) = read_service_run(src, start)?;
        segments.push(Segment {
            item: Item::Service(service.0.get_ref().clone()),
            range: start..end,
        });
        services.push(service);
        pos = end;
    }
    if !layout::services_apart(src, &segments) {
        return None;
    }
    // The text up to the end of the last other item: services after it are not needed.
    let rest_len = segments
        .iter()
        .filter(|s| !matches!(s.item, Item::Service(_)))
        .map(|s| s.range.end)
        .max()
        .unwrap_or(0);
    let mut rest = src.as_bytes()[..rest_len].to_vec();
    for s in &segments {
        // Spaces keep every other span in place, and the line ends of the text before.
        if matches!(s.item, Item::Service(_)) && s.range.start < rest_len {
            rest[s.range.clone()].fill(b' ');
        }
    }
    // In name order, as the toml crate's table of services gives them. The services are
    // large: sorted as positions, then moved once.
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by(|&a, &b| services[a].0.get_ref().cmp(services[b].0.get_ref()));
    let mut slots: Vec<Option<ServiceRead>> = services.into_iter().map(Some).collect();
    let services = order.iter().filter_map(|&i| slots[i].take()).collect();
    let rest = String::from_utf8(rest).ok()?;
    let root = DeTable::parse(&rest).ok()?;
    let mut cx = Validator::default();
    let mut raw = cx.gather(root.get_ref());
    if !cx.diags.is_empty() || !raw.services.is_empty() {
        return None;
    }
    raw.services = services;
    Some((raw, segments))
}

/// A service as the fast reader gives it: its name, its table and its reals.
type ServiceRead = (Spanned<String>, ServiceSchema, Vec<RealSchema>);

/// The service `name` written in `src[range]`, read by the fast reader, when it is in the
/// subset and deserializes without a problem.
pub(super) fn read_service(src: &str, range: Range<usize>, name: &str) -> Option<ServiceRead> {
    let text = service_toml::service(src, range)?;
    if text.name != name {
        return None;
    }
    schema_of(text)
}

/// The service whose first header opens the line at `start`, as [`read_service`] reads it,
/// and where its run of tables ends.
fn read_service_run(src: &str, start: usize) -> Option<(ServiceRead, usize)> {
    let (text, end) = service_toml::service_run(src, start)?;
    Some((schema_of(text)?, end))
}

/// The schemas of a service the fast reader read, when they deserialize without a problem.
fn schema_of(text: ServiceText<'_>) -> Option<ServiceRead> {
    if !valid_name(&text.name) {
        return None;
    }
    let schema: ServiceSchema = de::from_table(&text.keys, text.name_span.clone()).ok()?;
    let mut reals = Vec::with_capacity(text.reals.len());
    for r in &text.reals {
        let keys = text.keys_of(r);
        let real = match plain_real(keys) {
            Some(real) => real,
            None => de::from_table::<RealSchema>(keys, r.span.clone()).ok()?,
        };
        reals.push(real);
    }
    Some((
        Spanned::new(text.name_span, text.name.into_owned()),
        schema,
        reals,
    ))
}

/// A real written the plain way (`address` and integer `weight` and thresholds, nearly every
/// real of a large file) read without serde's visitors: the schema [`de::from_node`] gives for
/// it. Anything else (another key, another type, an address that does not parse) is `None`,
/// and the real goes through serde.
fn plain_real(entries: &[Entry]) -> Option<RealSchema> {
    let (mut address, mut weight, mut upper, mut lower) = (None, None, None, None);
    for e in entries {
        let span = e.value.span.clone();
        match (&*e.key, &e.value.value) {
            ("address", Value::Str(s)) => {
                address = Some(Spanned::new(span, s.parse::<Endpoint>().ok()?))
            }
            ("weight", Value::Int(n)) => weight = Some(Spanned::new(span, *n)),
            ("upper_threshold", Value::Int(n)) => upper = Some(Spanned::new(span, *n)),
            ("lower_threshold", Value::Int(n)) => lower = Some(Spanned::new(span, *n)),
            _ => return None,
        }
    }
    Some(RealSchema {
        address: address?,
        weight,
        forwarding: None,
        upper_threshold: upper,
        lower_threshold: lower,
        check: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{finish, parse, Validator};

    /// What validation gives with the toml crate alone, the way it was before the fast path.
    fn with_toml_only(src: &str) -> String {
        let mut cx = Validator::default();
        let config = cx.gather_with_toml(src).and_then(|raw| {
            let before = cx.error_count();
            let config = cx.build(raw);
            (cx.error_count() == before).then_some(config).flatten()
        });
        format!("{:?}", finish("lb.toml", src.to_string(), config, cx.diags))
    }

    fn example(name: &str) -> String {
        let path = format!("{}/../tools/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A file of `n` services written in the subset, with every kind of value it takes.
    fn many_services(n: usize) -> String {
        let mut t = String::from(
            "# many\n[vrrp.instance.A]\ninterface = \"eth0\"\nvrid = 9\npriority = 100\nvips = [\"10.10.0.1/32\"]\n\n[check.web]\ntype = \"http\"\npath = \"/\"\n",
        );
        for s in 0..n {
            t += &format!(
                "[service.s{s}] # the {s}th\nvip = '10.10.0.1:{}'\nscheduler = \"wlc\"\nforwarding = \"dr\"\ncheck = {}\nflags = []\n",
                s + 1,
                if s % 2 == 0 { "\"web\"" } else { "{ type = \"tcp\", interval = \"2s\" }" }
            );
            for r in 0..3 {
                t += &format!(
                    "[[service.s{s}.real]]\naddress = \"10.20.0.{}:{}\"\nweight = {}\n",
                    r + 1,
                    s + 1,
                    r * 1_000
                );
            }
        }
        t
    }

    #[test]
    fn gives_what_the_toml_crate_gives() {
        let mut texts: Vec<String> = ["checks.toml", "classic-pair.toml", "demo.toml"]
            .iter()
            .chain(&["ipv6-dr.toml", "nway.toml"])
            .map(|n| example(n))
            .collect();
        texts.push(many_services(30));
        // Problems in services (the fast path steps aside) and around them (it does not).
        let base = many_services(3);
        for (from, to) in [
            ("weight = 1000\n", "weight = 1000\nwieght = 2\n"),
            ("vip = '10.10.0.1:2'", "vip = '10.10.0.1:1'"),
            ("address = \"10.20.0.1:1\"", "address = \"10.20.0.1\""),
            (
                "[[service.s1.real]]\naddress = \"10.20.0.1:2\"\nweight = 0\n",
                "",
            ),
            ("scheduler = \"wlc\"", "scheduler = \"wcl\""),
            ("check = \"web\"", "check = \"wbe\""),
            ("interval = \"2s\"", "interval = 2"),
            ("priority = 100", "priority = 1000"),
            ("path = \"/\"", "path = \"/\"\nbogus = 1"),
            (
                "[check.web]",
                "[check.web]\n[check.unused]\ntype = \"tcp\"\n[check.x]",
            ),
            ("[service.s2]", "[service.s1]"),
            ("flags = []\n", "flags = [1.5]\n"),
            ("# many\n", "top = 1\n"),
        ] {
            assert!(base.contains(from), "{from}");
            texts.push(base.replacen(from, to, 1));
        }
        for text in &texts {
            assert_eq!(
                format!("{:?}", parse("lb.toml", text)),
                with_toml_only(text)
            );
            // The services' readers split the text where the layout reader does.
            if let Some((_, segments)) = super::gather(text) {
                assert_eq!(Some(segments), crate::config::layout::segments(text));
            }
        }
    }

    /// Where a service's run of tables ends: at the next header of any other item, with the
    /// comments and blank lines before that header; headers of its own that the fast reader
    /// does not take, or that it finds out of place, send the file to the toml crate.
    #[test]
    fn a_service_ends_where_the_layout_reader_ends_it() {
        use crate::config::layout;
        let head = "# top\n[service.a]\nvip = \"10.0.0.1:80\"\n[[service.a.real]]\naddress = \"10.0.0.2\"\n\n# b\n";
        for next in [
            "[service.b]\nvip = \"10.0.0.1:81\"\n",
            "  [node]\nhostname = \"x\"\n",
            "[[service.b.real]]\naddress = \"10.0.0.3\"\n[service.b]\n",
            "[ vrrp . instance . 'v' ] # x\r\ninterface = \"eth0\"\n",
            "[service.b.check]\n",
            "[service]\n",
        ] {
            let text = format!("{head}{next}");
            let start = text.find("[service.a]").unwrap();
            let (_, end) = super::read_service_run(&text, start).expect("read");
            let want = layout::segments(&text).expect("readable");
            assert_eq!(want[1].range, start..end, "{next:?}");
            assert_eq!(end, head.len(), "{next:?}");
        }
        for own in [
            "[service.a]\n",
            "[service.a.check]\n",
            "[[service.a.real]\n",
            "[[ service.a.real ]] junk\n",
        ] {
            let text = format!("{head}{own}");
            let start = text.find("[service.a]").unwrap();
            assert!(super::read_service_run(&text, start).is_none(), "{own:?}");
        }
    }

    /// The plain reals' schema is serde's, value for value and span for span; the others are
    /// left to serde.
    #[test]
    fn plain_reals_read_as_serde_reads_them() {
        use crate::config::schema::RealSchema;
        use crate::config::service_toml::{self, de};
        let text = "[service.s]\nvip = \"10.0.0.1:80\"\n\
            [[service.s.real]]\naddress = \"10.0.0.2:80\"\nweight = 3\n\
            [[service.s.real]]\nupper_threshold = 1_000 # late\naddress = '10.0.0.3'\nlower_threshold = -1\n\
            [[service.s.real]]\naddress = \"[2001:db8::1]:8080\"\n\
            [[service.s.real]]\naddress = \" 10.0.0.4:80 \"\n\
            [[service.s.real]]\naddress = \"10.0.0.5:80\"\nforwarding = \"nat\"\n\
            [[service.s.real]]\naddress = \"10.0.0.6:80\"\nweight = \"3\"\n\
            [[service.s.real]]\naddress = \"10.0.0.7:99999\"\n\
            [[service.s.real]]\nweight = 1\n\
            [[service.s.real]]\naddress = \"10.0.0.8:80\"\ncheck = { port = 81 }\n";
        let service = service_toml::service(text, 0..text.len()).expect("in the subset");
        let plain: Vec<bool> = service
            .reals
            .iter()
            .map(|r| {
                let keys = service.keys_of(r);
                let serde = format!(
                    "{:?}",
                    de::from_table::<RealSchema>(keys, r.span.clone()).ok()
                );
                match super::plain_real(keys) {
                    Some(p) => {
                        assert_eq!(format!("{:?}", Some(p)), serde);
                        true
                    }
                    None => false,
                }
            })
            .collect();
        assert_eq!(
            plain,
            [true, true, true, true, false, false, false, false, false]
        );
    }

    #[test]
    fn reads_services_itself_when_it_can() {
        for text in [example("demo.toml"), many_services(5)] {
            let (raw, _) = super::gather(&text).expect("the fast path");
            assert!(!raw.services.is_empty());
        }
    }
}
