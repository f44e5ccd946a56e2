//! Config URLs: templates with `${var}` placeholders, and the parsed, address-only URL model.
//!
//! Pure: no I/O, no tokio. PID 1 has no name resolver (a static binary has no glibc NSS), so a
//! URL must carry an IP address; a host name is rejected with an error that says so.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Transport of a config URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://`, default port 80.
    Http,
    /// `tftp://` (RFC 3617 form, octet mode), default port 69.
    Tftp,
    /// HTTP over TLS, trusting a pinned server key ([`super::tls`]).
    Https,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Tftp => 69,
            Scheme::Https => 443,
        }
    }

    /// The scheme as written in a URL, without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Tftp => "tftp",
            Scheme::Https => "https",
        }
    }
}

/// A parsed config URL: scheme, IP address, port and path.
///
/// `path` is the origin-form request target for HTTP (`/dir/file?query`, still percent-encoded);
/// for TFTP [`FetchUrl::tftp_filename`] gives the file name to request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchUrl {
    scheme: Scheme,
    host: IpAddr,
    port: u16,
    path: String,
}

/// What is wrong with a URL or URL template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://` prefix.
    #[error("{url:?}: missing scheme; expected http:// or tftp://")]
    MissingScheme {
        /// The URL as given.
        url: String,
    },
    /// A scheme this fetcher does not speak.
    #[error("{url:?}: unknown scheme {scheme:?}; expected http:// or tftp://")]
    UnknownScheme {
        /// The URL as given.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// The authority is empty (`http:///x`).
    #[error("{url:?}: no host; expected an IP address after the scheme")]
    MissingHost {
        /// The URL as given.
        url: String,
    },
    /// The host is a name, not an address.
    #[error("{url:?}: host {host:?} is a name; use an IP address; names are not resolved at boot")]
    HostName {
        /// The URL as given.
        url: String,
        /// The host as written.
        host: String,
    },
    /// A bracketed host that is not an IPv6 address, or other malformed address syntax.
    #[error("{url:?}: bad address {host:?}: {reason}")]
    BadAddress {
        /// The URL as given.
        url: String,
        /// The host as written.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The port is not a number in 1..=65535.
    #[error("{url:?}: bad port {port:?}; expected a number from 1 to 65535")]
    BadPort {
        /// The URL as given.
        url: String,
        /// The port as written.
        port: String,
    },
    /// `user@host` is not supported (and would put a secret in a boot log).
    #[error("{url:?}: user information (user@host) is not supported")]
    UserInfo {
        /// The URL as given.
        url: String,
    },
    /// A TFTP URL without a file name.
    #[error("{url:?}: no file name; a tftp:// URL needs a path such as tftp://10.0.0.1/node.toml")]
    MissingFile {
        /// The URL as given.
        url: String,
    },
    /// A character that may not appear in a URL (space, control character, non-ASCII).
    #[error("{url:?}: character {ch:?} at byte {at} is not allowed in a URL; percent-encode it")]
    BadChar {
        /// The URL as given.
        url: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// A `%` not followed by two hex digits.
    #[error("{url:?}: bad percent-escape at byte {at}; expected %XX with two hex digits")]
    BadEscape {
        /// The URL as given.
        url: String,
        /// Byte offset of the `%`.
        at: usize,
    },
    /// `${name}` with a name this fetcher does not know.
    #[error("{template:?}: unknown variable ${{{name}}}; known: ${{mac}} ${{mac_hyphen}} ${{ip}} ${{hostname}} ${{uuid}}")]
    UnknownVariable {
        /// The template as given.
        template: String,
        /// The name between the braces.
        name: String,
    },
    /// `${` without a closing `}`.
    #[error("{template:?}: unterminated ${{...}} at byte {at}")]
    UnterminatedVariable {
        /// The template as given.
        template: String,
        /// Byte offset of the `$`.
        at: usize,
    },
    /// A known variable whose value this node does not have (yet), e.g. `${ip}` before DHCP.
    #[error("{template:?}: variable ${{{name}}} has no value on this node")]
    VariableUnset {
        /// The template as given.
        template: String,
        /// The variable's name.
        name: &'static str,
    },
}

impl FetchUrl {
    /// Parses an absolute `http://` or `tftp://` URL whose host is an IP address.
    ///
    /// Accepted: `http://10.0.0.1/x`, `http://10.0.0.1:8080/x?y`, `tftp://[fd00::1]/pxe/node.toml`.
    /// A fragment (`#...`) is dropped. An empty HTTP path becomes `/`.
    pub fn parse(url: &str) -> Result<FetchUrl, UrlError> {
        let owned = || url.to_string();
        if let Some((at, ch)) = url
            .char_indices()
            .find(|&(_, c)| !c.is_ascii() || c.is_ascii_control() || c == ' ')
        {
            return Err(UrlError::BadChar {
                url: owned(),
                ch,
                at,
            });
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(UrlError::MissingScheme { url: owned() });
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "tftp" => Scheme::Tftp,
            "https" => Scheme::Https,
            _ => {
                return Err(UrlError::UnknownScheme {
                    url: owned(),
                    scheme: scheme.to_string(),
                })
            }
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo { url: owned() });
        }
        if authority.is_empty() {
            return Err(UrlError::MissingHost { url: owned() });
        }
        let (host, port) = split_host_port(url, authority)?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => {
                    return Err(UrlError::BadPort {
                        url: owned(),
                        port: p.to_string(),
                    })
                }
            },
        };
        check_escapes(url, path)?;
        let path = if path.is_empty() || path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let parsed = FetchUrl {
            scheme,
            host,
            port,
            path,
        };
        if scheme == Scheme::Tftp && parsed.tftp_filename().is_empty() {
            return Err(UrlError::MissingFile { url: owned() });
        }
        Ok(parsed)
    }

    /// Resolves a `Location` header value against this URL (RFC 3986 section 5.2, for the
    /// forms servers send: absolute URL, absolute path, relative path, query-only).
    pub fn join(&self, reference: &str) -> Result<FetchUrl, UrlError> {
        if reference.contains("://") {
            return FetchUrl::parse(reference);
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return FetchUrl::parse(&format!("{}://{rest}", self.scheme.as_str()));
        }
        let base_path = self.path.split_once('?').map_or(&*self.path, |(p, _)| p);
        let path = if reference.starts_with('/') {
            reference.to_string()
        } else if reference.starts_with('?') {
            format!("{base_path}{reference}")
        } else if reference.is_empty() {
            self.path.clone()
        } else {
            let dir = base_path.rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{reference}")
        };
        let path = remove_dot_segments(&path);
        FetchUrl::parse(&format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            path
        ))
    }

    /// This URL with `suffix` appended to its path, before any query: the address of a file
    /// stored beside this one, e.g. `node.toml` → `node.toml.sig`.
    pub fn with_path_suffix(&self, suffix: &str) -> Result<FetchUrl, UrlError> {
        let (path, query) = match self.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (&*self.path, None),
        };
        let mut s = format!(
            "{}://{}{path}{suffix}",
            self.scheme.as_str(),
            self.authority()
        );
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        FetchUrl::parse(&s)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The server's address.
    pub fn host(&self) -> IpAddr {
        self.host
    }

    /// The server's port (the scheme's default if the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The path and query as written (percent-encoded), always starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `host[:port]` as in a URL and in an HTTP `Host` header: IPv6 in brackets, the port only
    /// when it is not the scheme's default.
    pub fn authority(&self) -> String {
        let host = match self.host {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The file name a TFTP read request asks for: the path without its leading `/`,
    /// percent-decoded (RFC 3617). Bytes that are not UTF-8 are replaced.
    pub fn tftp_filename(&self) -> String {
        let raw = self.path.strip_prefix('/').unwrap_or(&self.path);
        // The escapes were checked when the URL was parsed.
        String::from_utf8_lossy(&lbd::percent::decode(raw).unwrap_or_else(|_| raw.into()))
            .into_owned()
    }
}

impl fmt::Display for FetchUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }
}

fn split_host_port<'a>(
    url: &str,
    authority: &'a str,
) -> Result<(IpAddr, Option<&'a str>), UrlError> {
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return Err(UrlError::BadAddress {
                url: url.to_string(),
                host: authority.to_string(),
                reason: "missing ']' after an IPv6 address",
            });
        };
        let addr: Ipv6Addr = v6.parse().map_err(|_| UrlError::BadAddress {
            url: url.to_string(),
            host: authority.to_string(),
            reason: "not an IPv6 address",
        })?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| UrlError::BadAddress {
                url: url.to_string(),
                host: authority.to_string(),
                reason: "expected ':port' after ']'",
            })?),
        };
        return Ok((IpAddr::V6(addr), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.contains(':') {
        return Err(UrlError::BadAddress {
            url: url.to_string(),
            host: authority.to_string(),
            reason: "an IPv6 address must be written in brackets, e.g. [fd00::1]",
        });
    }
    if host.is_empty() {
        return Err(UrlError::MissingHost {
            url: url.to_string(),
        });
    }
    match host.parse::<Ipv4Addr>() {
        Ok(a) => Ok((IpAddr::V4(a), port)),
        // Only digits and dots looks like a mistyped address, not a name: say so precisely.
        Err(_) if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            Err(UrlError::BadAddress {
                url: url.to_string(),
                host: host.to_string(),
                reason: "not a valid IPv4 address",
            })
        }
        Err(_) => Err(UrlError::HostName {
            url: url.to_string(),
            host: host.to_string(),
        }),
    }
}

/// `path` must be a sub-slice of `url` (for the error's byte offset).
fn check_escapes(url: &str, path: &str) -> Result<(), UrlError> {
    let path_offset = path.as_ptr() as usize - url.as_ptr() as usize;
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%'
            && !(i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit())
        {
            return Err(UrlError::BadEscape {
                url: url.to_string(),
                at: path_offset + i,
            });
        }
    }
    Ok(())
}

/// RFC 3986 section 5.2.4, on the path part only (the query is kept as is).
fn remove_dot_segments(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut p = out.join("/");
    if !p.starts_with('/') {
        p.insert(0, '/');
    }
    match query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    }
}

/// What this node knows about itself, for `${...}` in URL templates.
///
/// A field left `None` makes a template that uses it fail with [`UrlError::VariableUnset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    /// The boot NIC's MAC address: `${mac}` = `aa:bb:cc:dd:ee:ff`, `${mac_hyphen}` =
    /// `aa-bb-cc-dd-ee-ff` (pxelinux-style names).
    pub mac: Option<[u8; 6]>,
    /// The node's address on the boot network: `${ip}`.
    pub ip: Option<IpAddr>,
    /// The node's host name: `${hostname}`.
    pub hostname: Option<String>,
    /// The machine's SMBIOS/DMI product UUID: `${uuid}`, lower case with hyphens.
    pub uuid: Option<String>,
}

/// A variable that may appear in a URL template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// `${mac}`
    Mac,
    /// `${mac_hyphen}`
    MacHyphen,
    /// `${ip}`
    Ip,
    /// `${hostname}`
    Hostname,
    /// `${uuid}`
    Uuid,
}

impl Var {
    /// All variables, for messages and docs.
    pub const ALL: [Var; 5] = [Var::Mac, Var::MacHyphen, Var::Ip, Var::Hostname, Var::Uuid];

    /// The name between `${` and `}`.
    pub fn name(self) -> &'static str {
        match self {
            Var::Mac => "mac",
            Var::MacHyphen => "mac_hyphen",
            Var::Ip => "ip",
            Var::Hostname => "hostname",
            Var::Uuid => "uuid",
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }

    fn value(self, vars: &Vars) -> Option<String> {
        let mac = |sep: &str| {
            vars.mac.map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(sep)
            })
        };
        match self {
            Var::Mac => mac(":"),
            Var::MacHyphen => mac("-"),
            Var::Ip => vars.ip.map(|a| a.to_string()),
            Var::Hostname => vars.hostname.clone(),
            Var::Uuid => vars.uuid.as_ref().map(|u| u.to_ascii_lowercase()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A config URL with `${var}` placeholders, checked when parsed (syntax, scheme, variable names)
/// and expanded per fetch with the node's current [`Vars`].
///
/// `$` not followed by `{` is literal. Values are percent-encoded where the URL syntax needs it
/// (a host name with odd characters cannot break out of the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl UrlTemplate {
    /// Parses a template and checks that it expands to a valid URL (with placeholder values).
    pub fn parse(template: &str) -> Result<UrlTemplate, UrlError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        let mut offset = 0;
        while let Some(i) = rest.find("${") {
            text.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return Err(UrlError::UnterminatedVariable {
                    template: template.to_string(),
                    at: offset + i,
                });
            };
            let name = &after[..end];
            let var = Var::from_name(name).ok_or_else(|| UrlError::UnknownVariable {
                template: template.to_string(),
                name: name.to_string(),
            })?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Var(var));
            let consumed = i + 2 + end + 1;
            offset += consumed;
            rest = &rest[consumed..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let parsed = UrlTemplate {
            source: template.to_string(),
            pieces,
        };
        // Catch scheme/host/port mistakes now (at boot-config time), not at the first fetch.
        let sample = Vars {
            mac: Some([0x52, 0x54, 0, 0, 0, 1]),
            ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            hostname: Some("node".into()),
            uuid: Some("00000000-0000-0000-0000-000000000000".into()),
        };
        parsed.expand(&sample)?;
        Ok(parsed)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The variables this template uses, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = Var> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(*v),
            Piece::Text(_) => None,
        })
    }

    /// Substitutes the variables and parses the result.
    pub fn expand(&self, vars: &Vars) -> Result<FetchUrl, UrlError> {
        let mut url = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => url.push_str(t),
                Piece::Var(v) => {
                    let value = v.value(vars).ok_or(UrlError::VariableUnset {
                        template: self.source.clone(),
                        name: v.name(),
                    })?;
                    lbd::percent::encode_into(&mut url, &value);
                }
            }
        }
        FetchUrl::parse(&url)
    }
}

impl fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for UrlTemplate {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UrlTemplate::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            mac: Some([0x52, 0x54, 0x00, 0xAB, 0x0C, 0x01]),
            ip: Some("10.1.2.3".parse().unwrap()),
            hostname: Some("lb-a".into()),
            uuid: Some("4C4C4544-0042-3510-8052-B4C04F384B32".into()),
        }
    }

    #[test]
    fn parses_http_with_defaults() {
        let u = FetchUrl::parse("http://10.0.0.1/cfg/node.toml").unwrap();
        assert_eq!(u.scheme(), Scheme::Http);
        assert_eq!(u.host(), IpAddr::from([10, 0, 0, 1]));
        assert_eq!(u.port(), 80);
        assert_eq!(u.path(), "/cfg/node.toml");
        assert_eq!(u.authority(), "10.0.0.1");
        assert_eq!(u.to_string(), "http://10.0.0.1/cfg/node.toml");
    }

    #[test]
    fn parses_ports_queries_and_ipv6() {
        let u = FetchUrl::parse("HTTP://10.0.0.1:8080?node=a#frag").unwrap();
        assert_eq!(u.port(), 8080);
        assert_eq!(u.path(), "/?node=a");
        assert_eq!(u.authority(), "10.0.0.1:8080");
        let u = FetchUrl::parse("tftp://[fd00::1]:6969/pxe/a%20b.toml").unwrap();
        assert_eq!(u.host(), "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(u.port(), 6969);
        assert_eq!(u.tftp_filename(), "pxe/a b.toml");
        assert_eq!(u.to_string(), "tftp://[fd00::1]:6969/pxe/a%20b.toml");
        let u = FetchUrl::parse("tftp://192.0.2.7/x").unwrap();
        assert_eq!(u.port(), 69);
        assert_eq!(u.authority(), "192.0.2.7");
        let u = FetchUrl::parse("http://[::1]:80/").unwrap();
        assert_eq!(u.authority(), "[::1]");
    }

    #[test]
    fn rejects_what_boot_cannot_use() {
        let u = FetchUrl::parse("https://10.0.0.1/x").unwrap();
        assert_eq!((u.scheme(), u.port()), (Scheme::Https, 443));

        let e = FetchUrl::parse("http://config.example/x").unwrap_err();
        assert_eq!(
            e,
            UrlError::HostName {
                url: "http://config.example/x".into(),
                host: "config.example".into()
            }
        );
        assert!(e
            .to_string()
            .contains("use an IP address; names are not resolved at boot"));

        type Check = fn(&UrlError) -> bool;
        let cases: [(&str, Check); 12] = [
            ("10.0.0.1/x", |e| {
                matches!(e, UrlError::MissingScheme { .. })
            }),
            ("ftp://10.0.0.1/x", |e| {
                matches!(e, UrlError::UnknownScheme { .. })
            }),
            ("http:///x", |e| matches!(e, UrlError::MissingHost { .. })),
            ("http://:80/x", |e| {
                matches!(e, UrlError::MissingHost { .. })
            }),
            ("http://10.0.0.1:0/x", |e| {
                matches!(e, UrlError::BadPort { .. })
            }),
            ("http://10.0.0.1:99999/x", |e| {
                matches!(e, UrlError::BadPort { .. })
            }),
            ("http://10.0.0.1:/x", |e| {
                matches!(e, UrlError::BadPort { .. })
            }),
            ("http://10.0.0.300/x", |e| {
                matches!(e, UrlError::BadAddress { .. })
            }),
            ("http://fd00::1/x", |e| {
                matches!(e, UrlError::BadAddress { .. })
            }),
            ("http://u:p@10.0.0.1/x", |e| {
                matches!(e, UrlError::UserInfo { .. })
            }),
            ("tftp://10.0.0.1/", |e| {
                matches!(e, UrlError::MissingFile { .. })
            }),
            ("http://10.0.0.1/a b", |e| {
                matches!(
                    e,
                    UrlError::BadChar {
                        ch: ' ',
                        at: 17,
                        ..
                    }
                )
            }),
        ];
        for (url, check) in cases {
            let e = FetchUrl::parse(url).unwrap_err();
            assert!(check(&e), "{url}: got {e:?}");
        }
        let e = FetchUrl::parse("http://10.0.0.1/a%2").unwrap_err();
        assert_eq!(
            e,
            UrlError::BadEscape {
                url: "http://10.0.0.1/a%2".into(),
                at: 17
            }
        );
    }

    #[test]
    fn joins_redirect_locations() {
        let base = FetchUrl::parse("http://10.0.0.1:8080/a/b/c.toml?x=1").unwrap();
        let j = |r: &str| base.join(r).unwrap().to_string();
        assert_eq!(j("http://10.0.0.2/z"), "http://10.0.0.2/z");
        assert_eq!(j("/top"), "http://10.0.0.1:8080/top");
        assert_eq!(j("d.toml"), "http://10.0.0.1:8080/a/b/d.toml");
        assert_eq!(j("../d.toml"), "http://10.0.0.1:8080/a/d.toml");
        assert_eq!(j("../../../../d"), "http://10.0.0.1:8080/d");
        assert_eq!(j("./"), "http://10.0.0.1:8080/a/b/");
        assert_eq!(j("?y=2"), "http://10.0.0.1:8080/a/b/c.toml?y=2");
        assert_eq!(j("//10.0.0.9:81/q"), "http://10.0.0.9:81/q");
        assert_eq!(j("https://10.0.0.1/x"), "https://10.0.0.1/x");
    }

    #[test]
    fn suffix_goes_before_the_query() {
        let u = FetchUrl::parse("http://10.0.0.1/n/a.toml?v=2").unwrap();
        assert_eq!(
            u.with_path_suffix(".sig").unwrap().to_string(),
            "http://10.0.0.1/n/a.toml.sig?v=2"
        );
        let u = FetchUrl::parse("tftp://10.0.0.1:6969/a").unwrap();
        assert_eq!(u.with_path_suffix(".sig").unwrap().tftp_filename(), "a.sig");
        assert!(u.with_path_suffix(" x").is_err());
    }

    #[test]
    fn expands_variables() {
        let t = UrlTemplate::parse("http://10.0.0.1/n/${mac}/${hostname}.toml?ip=${ip}&u=${uuid}")
            .unwrap();
        assert_eq!(
            t.expand(&vars()).unwrap().to_string(),
            "http://10.0.0.1/n/52:54:00:ab:0c:01/lb-a.toml?ip=10.1.2.3&u=4c4c4544-0042-3510-8052-b4c04f384b32"
        );
        let t = UrlTemplate::parse("tftp://10.0.0.1/pxelinux.cfg/01-${mac_hyphen}").unwrap();
        let u = t.expand(&vars()).unwrap();
        assert_eq!(u.tftp_filename(), "pxelinux.cfg/01-52-54-00-ab-0c-01");
        assert_eq!(t.variables().collect::<Vec<_>>(), vec![Var::MacHyphen]);
        // A literal '$' and a value needing escapes.
        let t = UrlTemplate::parse("http://10.0.0.1/$x/${hostname}").unwrap();
        let v = Vars {
            hostname: Some("a b/c".into()),
            ..Vars::default()
        };
        assert_eq!(t.expand(&v).unwrap().path(), "/$x/a%20b%2Fc");
        // The host may come from a variable too.
        let t = UrlTemplate::parse("http://${ip}:8080/x").unwrap();
        assert_eq!(
            t.expand(&vars()).unwrap().socket_addr().to_string(),
            "10.1.2.3:8080"
        );
    }

    #[test]
    fn template_errors_name_the_problem() {
        let e = UrlTemplate::parse("http://10.0.0.1/${serial}").unwrap_err();
        assert_eq!(
            e,
            UrlError::UnknownVariable {
                template: "http://10.0.0.1/${serial}".into(),
                name: "serial".into()
            }
        );
        assert!(e.to_string().contains("unknown variable ${serial}"), "{e}");
        let e = UrlTemplate::parse("http://10.0.0.1/x/${mac").unwrap_err();
        assert_eq!(
            e,
            UrlError::UnterminatedVariable {
                template: "http://10.0.0.1/x/${mac".into(),
                at: 18
            }
        );
        assert!(UrlTemplate::parse("https://10.0.0.1/${mac}").is_ok());
        let t = UrlTemplate::parse("http://10.0.0.1/${ip}").unwrap();
        let e = t.expand(&Vars::default()).unwrap_err();
        assert_eq!(
            e,
            UrlError::VariableUnset {
                template: "http://10.0.0.1/${ip}".into(),
                name: "ip"
            }
        );
        assert!(e.to_string().contains("${ip} has no value"), "{e}");
    }
}
