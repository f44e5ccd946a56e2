//! The reader against the toml crate: what it reads must be what the toml crate reads, value
//! for value and span for span; what it leaves must be left whole.

use super::{service, Entry, Node, ServiceText, Value};
use std::borrow::Cow;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The toml crate's tree as the reader's, tables in key order.
fn node(v: &Spanned<DeValue<'_>>) -> Node<'static> {
    let value = match v.get_ref() {
        DeValue::String(s) => Value::Str(Cow::Owned(s.to_string())),
        DeValue::Integer(i) => Value::Int(i64::from_str_radix(i.as_str(), i.radix()).unwrap()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Array(a) => Value::Array(a.iter().map(node).collect()),
        DeValue::Table(t) => Value::Table(entries(t)),
        other => panic!("not in the subset: {other:?}"),
    };
    Node {
        span: v.span(),
        value,
    }
}

fn entries(t: &DeTable<'_>) -> Vec<Entry<'static>> {
    t.iter()
        .map(|(k, v)| Entry {
            key: Cow::Owned(k.get_ref().to_string()),
            key_span: k.span(),
            value: node(v),
        })
        .collect()
}

/// Tables in key order, strings owned: comparable with [`node`]'s.
fn normal(n: &Node<'_>) -> Node<'static> {
    Node {
        span: n.span.clone(),
        value: match &n.value {
            Value::Str(s) => Value::Str(Cow::Owned(s.to_string())),
            Value::Int(i) => Value::Int(*i),
            Value::Bool(b) => Value::Bool(*b),
            Value::Array(a) => Value::Array(a.iter().map(normal).collect()),
            Value::Table(t) => Value::Table(normal_entries(t)),
        },
    }
}

fn normal_entries(t: &[Entry<'_>]) -> Vec<Entry<'static>> {
    let mut out: Vec<Entry> = t
        .iter()
        .map(|e| Entry {
            key: Cow::Owned(e.key.to_string()),
            key_span: e.key_span.clone(),
            value: normal(&e.value),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Reads `text` both ways and asserts they agree; the reader's result.
fn same_as_toml(text: &str) -> Option<ServiceText<'_>> {
    let ours = service(text, 0..text.len());
    let theirs = DeTable::parse(text);
    let ours = ours?;
    let root = theirs.unwrap_or_else(|e| panic!("read what toml refuses: {e}\n{text}"));
    let services = root.get_ref().get("service").expect("[service]");
    let DeValue::Table(services) = services.get_ref() else {
        panic!("service is not a table")
    };
    assert_eq!(services.len(), 1, "{text}");
    let (name, item) = services.iter().next().unwrap();
    assert_eq!(name.get_ref(), &ours.name, "{text}");
    assert_eq!(name.span(), ours.name_span, "{text}");
    let DeValue::Table(table) = item.get_ref() else {
        panic!("not a table")
    };
    let mut keys = entries(table);
    let reals = keys
        .iter()
        .position(|e| e.key == "real")
        .map(|i| keys.remove(i));
    assert_eq!(keys, normal_entries(&ours.keys), "{text}");
    let theirs_reals: Vec<Node> = match reals {
        Some(Entry {
            value: Node {
                value: Value::Array(a),
                ..
            },
            ..
        }) => a,
        None => Vec::new(),
        Some(other) => panic!("real is {other:?}"),
    };
    let ours_reals: Vec<Node> = ours
        .reals
        .iter()
        .map(|r| {
            normal(&Node {
                span: r.span.clone(),
                value: Value::Table(ours.keys_of(r).to_vec()),
            })
        })
        .collect();
    assert_eq!(theirs_reals, ours_reals, "{text}");
    Some(ours)
}

#[test]
fn reads_what_services_are_written_in_as_toml_does() {
    for text in [
        "[service.web]\nvip = \"10.0.0.1:80\"\nscheduler = \"wrr\"\n",
        "[service.web]\nvip = \"10.0.0.1:80\"\n[[service.web.real]]\naddress = \"10.1.0.1:80\"\nweight = 3\n[[service.web.real]]\naddress = \"10.1.0.2:80\"\n",
        "[ service . \"web-1\" ]   # a comment\r\n  'vip' = '10.0.0.1:80'\t\r\n\n[[ service.\"web-1\" . real ]]\naddress = \"a\\u00e9\\\"\\\\\\n\"\n",
        "[service.w]\nflags = [ \"sh-fallback\",\n  # why\n  \"sh-port\", ]\nfwmark = +1_000\non_failure = \"remove\"\n",
        "[service.w]\ncheck = { type = \"http\", port = 8080, path = \"/h\", expect_status = [200, 204], tls_verify = false }\nquorum = {}\n",
        "[service.w]\ncheck = \"web\"\nname = \"é ü 日本\"\nempty = \"\"\nlit = ''\nneg = -0\nbig = 9223372036854775807\nsmall = -9_223_372_036_854_775_808\n",
        "# before\n\n[service.w] # after\n[[service.w.real]]\n[[service.w.real]]\ncheck = { rise = 2 }\n",
        "[service.w]\nnested = [[1, 2], [\"a\"], [], [ { a = 1 } ]]\n",
    ] {
        assert!(same_as_toml(text).is_some(), "not read:\n{text}");
    }
}

#[test]
fn leaves_the_rest_to_the_toml_crate() {
    for text in [
        // Outside the subset.
        "[service.w]\nratio = 1.5\n",
        "[service.w]\nwhen = 1979-05-27\n",
        "[service.w]\nmark = 0x10\n",
        "[service.w]\npem = \"\"\"\nx\n\"\"\"\n",
        "[service.w]\ncheck.type = \"tcp\"\n",
        "[service.w.check]\ntype = \"tcp\"\n",
        "[service.w]\n[service.w.persistence]\ntimeout = \"5m\"\n",
        "[[service.w.real]]\naddress = \"a\"\n[service.w]\n",
        "[service.w]\ncheck = { type = \"tcp\", }\n",
        "[service.w]\ncheck = {\n type = \"tcp\" }\n",
        "[service.w]\nx = \"\\e\"\n",
        "[service.w]\nreal = []\n",
        // Not TOML.
        "[service.w]\nvip = \"a\"\nvip = \"b\"\n",
        "[service.w]\n[service.w]\n",
        "[service.w]\n[[service.w.real]]\nweight = 1\nweight = 2\n",
        "[service.w]\nx = 01\n",
        "[service.w]\nx = 1__0\n",
        "[service.w]\nx = 1_\n",
        "[service.w]\nx = \"unterminated\n",
        "[service.w]\nx = 'a\u{1}'\n",
        "[service.w]\nx = 1 y = 2\n",
        "[service.w]\nx = [1 2]\n",
        "[service.w]\nx = \"\\ud800\"\n",
        "[service.w]\nx = 1 # \u{7f}\n",
        "[service.w]\nx = true1\n",
        "[service.w]\nx =\n",
        "[service.w]\nx = 1\ry = 2\n",
        "[service.w] x = 1\n",
        "[service.w]\n[ [service.w.real]]\n",
        "[service.w]\nx = { a = 1, a = 2 }\n",
        "[service.w]\nx = 99999999999999999999\n",
        "[service.w]\nx = -9223372036854775809\n",
    ] {
        assert!(
            same_as_toml(text).is_none(),
            "read what it should leave:\n{text}"
        );
    }
}

#[test]
fn a_run_in_a_larger_text_keeps_its_spans() {
    let text = "[node]\nhostname = \"a\"\n[service.w]\nvip = \"10.0.0.1:80\"\n[vrrp]\n";
    let start = text.find("[service").unwrap();
    let end = text.find("[vrrp").unwrap();
    let s = service(text, start..end).unwrap();
    assert_eq!(&text[s.name_span.clone()], "w");
    assert_eq!(&text[s.keys[0].value.span.clone()], "\"10.0.0.1:80\"");
}

/// A service read where it starts takes room for its own reals, not for the rest of the file
/// (the text after it is not its own until read).
#[test]
fn a_run_takes_room_for_its_own_reals() {
    let mut text = String::from(
        "[service.a]\nvip = \"10.0.0.1:80\"\n[[service.a.real]]\naddress = \"10.0.0.2\"\n",
    );
    let end = text.len();
    for i in 0..5_000 {
        text += &format!("[service.s{i}]\nvip = \"10.0.0.1:{}\"\n", i + 1);
    }
    let (read, stop) = super::service_run(&text, 0).expect("in the subset");
    assert_eq!(stop, end);
    assert_eq!(read.reals.len(), 1);
    assert!(read.reals.capacity() <= 64, "{}", read.reals.capacity());
    assert!(
        read.real_keys.capacity() <= 128,
        "{}",
        read.real_keys.capacity()
    );
}
