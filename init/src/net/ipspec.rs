//! The kernel's `ip=` boot parameter (Documentation/admin-guide/nfs/nfsroot.rst), parsed into an
//! [`IpSpec`]. Pure: no I/O.
//!
//! ```text
//! ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//! ip=dhcp | ip=on | ip=any      DHCP on the first ethernet link that gets carrier
//! ip=off  | ip=none             no network configuration (only `lo`)
//! ```
//!
//! Semantics follow the kernel's `ip_auto_config_setup()`:
//! - every field may be empty; `0.0.0.0` counts as empty, as in the kernel;
//! - a `<client-ip>` means static configuration (the kernel only autoconfigures a single device
//!   when the address is missing), whatever `<autoconf>` says;
//! - without `<client-ip>`, `<autoconf>` empty/`on`/`any`/`dhcp` means DHCP; `off`/`none` means
//!   no configuration, which we refuse as a likely mistake when other fields are filled in;
//! - a missing `<netmask>` is the classful default of `<client-ip>`, as in the kernel;
//! - values given here win over what DHCP supplies (gateway, DNS, hostname, server).
//!
//! Our extensions: `<netmask>` may be a prefix length (`24`), and [`ip_specs_from_cmdline`] returns
//! one spec per `ip=` (the kernel keeps only the last), so several devices can be configured.
//! `bootp`, `rarp` and `both` are refused: this init speaks DHCP only.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// What one `ip=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSpec {
    /// How the address is obtained.
    pub mode: IpMode,
    /// `<server-ip>`: the boot server. Reported as `next_server`; overrides DHCP's `siaddr`.
    pub server: Option<Ipv4Addr>,
    /// `<gw-ip>`: default gateway. With DHCP, overrides the lease's router.
    pub gateway: Option<Ipv4Addr>,
    /// `<hostname>`: set as the kernel hostname and sent to the DHCP server. Overrides DHCP's.
    pub hostname: Option<String>,
    /// `<device>`: the link to configure; `None` = the first ethernet link with carrier.
    pub device: Option<String>,
    /// `<dns0-ip>`, `<dns1-ip>` in order, empty fields left out. With DHCP, non-empty overrides
    /// the lease's DNS servers.
    pub dns: Vec<Ipv4Addr>,
    /// `<ntp0-ip>`.
    pub ntp: Option<Ipv4Addr>,
}

/// How the address of an [`IpSpec`] is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// `ip=off`/`ip=none`: leave the network unconfigured (only `lo` comes up).
    Off,
    /// DHCPv4 on the chosen device.
    Dhcp,
    /// Static address `address/prefix_len` on the chosen device.
    Static {
        /// `<client-ip>`.
        address: Ipv4Addr,
        /// From `<netmask>` (dotted mask or prefix length) or the classful default.
        prefix_len: u8,
    },
}

impl IpSpec {
    /// DHCP on the first ethernet link that gets carrier, nothing overridden: `ip=dhcp`.
    pub fn dhcp() -> Self {
        Self::with_mode(IpMode::Dhcp)
    }

    /// `ip=off`.
    pub fn off() -> Self {
        Self::with_mode(IpMode::Off)
    }

    fn with_mode(mode: IpMode) -> Self {
        IpSpec {
            mode,
            server: None,
            gateway: None,
            hostname: None,
            device: None,
            dns: Vec::new(),
            ntp: None,
        }
    }

    /// Parses the value of one `ip=` (without the `ip=` itself).
    pub fn parse(value: &str) -> Result<Self, IpSpecError> {
        parse(value)
    }
}

impl Default for IpSpec {
    /// What init does without any `ip=`: DHCP on the first ethernet link with carrier.
    fn default() -> Self {
        Self::dhcp()
    }
}

impl FromStr for IpSpec {
    type Err = IpSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Every `ip=` on a kernel command line, in order. Empty if there is none.
///
/// The kernel itself honours only the last one; we return all so init can configure several
/// devices (one spec per device). Two specs naming the same device, or two without a device, are
/// refused since they would fight over one link.
pub fn ip_specs_from_cmdline(cmdline: &str) -> Result<Vec<IpSpec>, IpSpecError> {
    let specs = cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix("ip="))
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in specs.iter().enumerate() {
        if a.mode == IpMode::Off {
            continue;
        }
        for b in specs[i + 1..].iter().filter(|b| b.mode != IpMode::Off) {
            if a.device == b.device {
                return Err(IpSpecError::SameDeviceTwice {
                    device: a.device.clone(),
                });
            }
        }
    }
    Ok(specs)
}

/// One field of the long `ip=` form, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpField {
    ClientIp,
    ServerIp,
    GatewayIp,
    Netmask,
    Hostname,
    Device,
    Autoconf,
    Dns0Ip,
    Dns1Ip,
    Ntp0Ip,
}

impl IpField {
    const ALL: [IpField; 10] = [
        IpField::ClientIp,
        IpField::ServerIp,
        IpField::GatewayIp,
        IpField::Netmask,
        IpField::Hostname,
        IpField::Device,
        IpField::Autoconf,
        IpField::Dns0Ip,
        IpField::Dns1Ip,
        IpField::Ntp0Ip,
    ];

    /// 1-based position in the colon-separated list.
    pub fn position(self) -> usize {
        self as usize + 1
    }

    /// The name the kernel documentation uses.
    pub fn name(self) -> &'static str {
        match self {
            IpField::ClientIp => "client-ip",
            IpField::ServerIp => "server-ip",
            IpField::GatewayIp => "gw-ip",
            IpField::Netmask => "netmask",
            IpField::Hostname => "hostname",
            IpField::Device => "device",
            IpField::Autoconf => "autoconf",
            IpField::Dns0Ip => "dns0-ip",
            IpField::Dns1Ip => "dns1-ip",
            IpField::Ntp0Ip => "ntp0-ip",
        }
    }
}

impl fmt::Display for IpField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {} <{}>", self.position(), self.name())
    }
}

/// What is wrong with one field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    NotAnIpv4Address,
    NotUnicast,
    /// Neither a dotted mask nor a prefix length 0..=32.
    NotANetmask,
    /// A dotted mask whose one bits are not contiguous from the left.
    NonContiguousMask,
    HostnameTooLong {
        len: usize,
    },
    HostnameBadChar {
        ch: char,
    },
    HostnameBadLabel,
    DeviceNameInvalid,
    UnknownAutoconf,
    UnsupportedAutoconf,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::NotAnIpv4Address => f.write_str("not an IPv4 address (expected a.b.c.d)"),
            FieldProblem::NotUnicast => f.write_str("not a unicast address"),
            FieldProblem::NotANetmask => f.write_str(
                "not a netmask (expected a dotted mask like 255.255.255.0 or a prefix length 0..=32)",
            ),
            FieldProblem::NonContiguousMask => {
                f.write_str("mask bits are not contiguous (expected e.g. 255.255.240.0)")
            }
            FieldProblem::HostnameTooLong { len } => {
                write!(f, "{len} bytes long, a hostname has at most 64")
            }
            FieldProblem::HostnameBadChar { ch } => write!(
                f,
                "character {ch:?} not allowed in a hostname (letters, digits, '-', '.')"
            ),
            FieldProblem::HostnameBadLabel => f.write_str(
                "empty label or label starting/ending with '-' (expected e.g. lb1.example.org)",
            ),
            FieldProblem::DeviceNameInvalid => f.write_str(
                "not a link name (1..=15 bytes, no '/', ':' or whitespace; e.g. eth0)",
            ),
            FieldProblem::UnknownAutoconf => {
                f.write_str("unknown method (expected one of off, none, on, any, dhcp)")
            }
            FieldProblem::UnsupportedAutoconf => {
                f.write_str("BOOTP/RARP are not supported by this init (use dhcp)")
            }
        }
    }
}

/// Why an `ip=` value was refused. The message quotes the whole value and names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpSpecError {
    #[error("ip={spec}: {field} = {value:?}: {problem}")]
    Field {
        spec: String,
        field: IpField,
        value: String,
        problem: FieldProblem,
    },
    #[error("ip={spec}: {count} fields, the kernel syntax has at most 10 (client-ip:server-ip:gw-ip:netmask:hostname:device:autoconf:dns0-ip:dns1-ip:ntp0-ip)")]
    TooManyFields { spec: String, count: usize },
    #[error("ip={spec}: autoconf is {autoconf:?} but <client-ip> (field 1) is empty, so nothing would be configured; give a client-ip, or write ip=off if no network is wanted")]
    OffWithoutClientIp { spec: String, autoconf: String },
    #[error("ip=: two ip= for {}; each device may appear once", device.as_deref().map_or("the automatically chosen device".to_string(), |d| format!("device {d:?}")))]
    SameDeviceTwice { device: Option<String> },
}

fn parse(spec: &str) -> Result<IpSpec, IpSpecError> {
    if let Some(short) = short_form(spec) {
        return Ok(short);
    }
    let fields: Vec<&str> = spec.split(':').collect();
    // dracut's `<device>:<method>` (`ip=bond0:dhcp`): a device, not a client-ip, first.
    if let [device, method] = fields.as_slice() {
        if device.parse::<Ipv4Addr>().is_err() && !device.is_empty() {
            return device_and_method(spec, device, method);
        }
    }
    if fields.len() > IpField::ALL.len() {
        return Err(IpSpecError::TooManyFields {
            spec: spec.to_string(),
            count: fields.len(),
        });
    }
    let fields = Fields { spec, fields };
    if let [word] = fields.fields.as_slice() {
        fields.check_lone_word(word)?;
    }

    // Checked in field order, so the first bad field is the one reported.
    let client = fields.addr(IpField::ClientIp)?;
    let server = fields.addr(IpField::ServerIp)?;
    let gateway = fields.addr(IpField::GatewayIp)?;
    let netmask = fields.netmask()?;
    let hostname = fields.hostname()?;
    let device = fields.device()?;
    let autoconf_on = fields.autoconf_on()?;
    let dns: Vec<Ipv4Addr> = [fields.addr(IpField::Dns0Ip)?, fields.addr(IpField::Dns1Ip)?]
        .into_iter()
        .flatten()
        .collect();
    let ntp = fields.addr(IpField::Ntp0Ip)?;

    let mode = match client {
        Some(address) => IpMode::Static {
            address,
            prefix_len: netmask.unwrap_or_else(|| classful_prefix_len(address)),
        },
        None if autoconf_on => IpMode::Dhcp,
        None => {
            return Err(IpSpecError::OffWithoutClientIp {
                spec: spec.to_string(),
                autoconf: fields.get(IpField::Autoconf).to_string(),
            })
        }
    };
    Ok(IpSpec {
        mode,
        server,
        gateway,
        hostname,
        device,
        dns,
        ntp,
    })
}

/// The single-word forms (`ip=dhcp`, `ip=off`...); `None` for anything else.
fn short_form(spec: &str) -> Option<IpSpec> {
    match spec {
        "off" | "none" | "" => Some(IpSpec::off()),
        "on" | "any" | "dhcp" => Some(IpSpec::dhcp()),
        _ => None,
    }
}

/// dracut's `<device>:<method>`.
fn device_and_method(spec: &str, device: &str, method: &str) -> Result<IpSpec, IpSpecError> {
    let mut out = match method {
        "dhcp" | "on" | "any" => IpSpec::dhcp(),
        "off" | "none" => IpSpec::off(),
        other => {
            return Err(IpSpecError::Field {
                spec: spec.to_string(),
                field: IpField::Autoconf,
                value: other.to_string(),
                problem: FieldProblem::UnknownAutoconf,
            })
        }
    };
    if !valid_link_name(device) {
        return Err(IpSpecError::Field {
            spec: spec.to_string(),
            field: IpField::Device,
            value: device.to_string(),
            problem: FieldProblem::DeviceNameInvalid,
        });
    }
    out.device = Some(device.to_string());
    Ok(out)
}

/// The colon-separated fields of the long form, with the whole value for error messages.
struct Fields<'a> {
    spec: &'a str,
    fields: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn err(&self, field: IpField, value: &str, problem: FieldProblem) -> IpSpecError {
        IpSpecError::Field {
            spec: self.spec.to_string(),
            field,
            value: value.to_string(),
            problem,
        }
    }

    /// The field's value; `""` when the list stops before it.
    fn get(&self, field: IpField) -> &'a str {
        self.fields.get(field as usize).copied().unwrap_or("")
    }

    /// One word that is not a known short form: the kernel would read it as a client-ip, but a
    /// bare address with no netmask/device is almost always a typo for a method name.
    fn check_lone_word(&self, word: &str) -> Result<(), IpSpecError> {
        if word.parse::<Ipv4Addr>().is_err() {
            let problem = if matches!(word, "bootp" | "rarp" | "both") || word.starts_with("dhcp,")
            {
                FieldProblem::UnsupportedAutoconf
            } else {
                FieldProblem::UnknownAutoconf
            };
            return Err(self.err(IpField::Autoconf, word, problem));
        }
        Ok(())
    }

    fn addr(&self, field: IpField) -> Result<Option<Ipv4Addr>, IpSpecError> {
        let value = self.get(field);
        if value.is_empty() {
            return Ok(None);
        }
        let ip: Ipv4Addr = value
            .parse()
            .map_err(|_| self.err(field, value, FieldProblem::NotAnIpv4Address))?;
        // The kernel treats 0.0.0.0 as "not given".
        if ip.is_unspecified() {
            return Ok(None);
        }
        if ip.is_broadcast() || ip.is_multicast() {
            return Err(self.err(field, value, FieldProblem::NotUnicast));
        }
        Ok(Some(ip))
    }

    /// The prefix length `<netmask>` gives.
    fn netmask(&self) -> Result<Option<u8>, IpSpecError> {
        let value = self.get(IpField::Netmask);
        if value.is_empty() {
            return Ok(None);
        }
        let prefix_len = parse_netmask(value).map_err(|p| self.err(IpField::Netmask, value, p))?;
        Ok(Some(prefix_len))
    }

    fn hostname(&self) -> Result<Option<String>, IpSpecError> {
        let value = self.get(IpField::Hostname);
        if value.is_empty() {
            return Ok(None);
        }
        validate_hostname(value).map_err(|p| self.err(IpField::Hostname, value, p))?;
        Ok(Some(value.to_string()))
    }

    fn device(&self) -> Result<Option<String>, IpSpecError> {
        let value = self.get(IpField::Device);
        if value.is_empty() {
            return Ok(None);
        }
        if !valid_link_name(value) {
            return Err(self.err(IpField::Device, value, FieldProblem::DeviceNameInvalid));
        }
        Ok(Some(value.to_string()))
    }

    /// Whether `<autoconf>` asks for DHCP (when there is no client-ip).
    fn autoconf_on(&self) -> Result<bool, IpSpecError> {
        let value = self.get(IpField::Autoconf);
        match value {
            "" | "on" | "any" | "dhcp" => Ok(true),
            "off" | "none" => Ok(false),
            "bootp" | "rarp" | "both" => {
                Err(self.err(IpField::Autoconf, value, FieldProblem::UnsupportedAutoconf))
            }
            v if v.starts_with("dhcp,") => {
                Err(self.err(IpField::Autoconf, value, FieldProblem::UnsupportedAutoconf))
            }
            _ => Err(self.err(IpField::Autoconf, value, FieldProblem::UnknownAutoconf)),
        }
    }
}

/// A dotted netmask or a prefix length, as a prefix length.
fn parse_netmask(value: &str) -> Result<u8, FieldProblem> {
    if !value.is_empty() && value.len() <= 2 && value.bytes().all(|b| b.is_ascii_digit()) {
        let len: u8 = value.parse().map_err(|_| FieldProblem::NotANetmask)?;
        return if len <= 32 {
            Ok(len)
        } else {
            Err(FieldProblem::NotANetmask)
        };
    }
    let mask: Ipv4Addr = value.parse().map_err(|_| FieldProblem::NotANetmask)?;
    mask_to_prefix_len(mask).ok_or(FieldProblem::NonContiguousMask)
}

/// `255.255.255.0` → 24; `None` if the one bits are not contiguous from the left.
pub fn mask_to_prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    // All bits after the leading ones must be zero.
    if len < 32 && bits << len != 0 {
        return None;
    }
    Some(len as u8)
}

/// 24 → `255.255.255.0`. Lengths above 32 are treated as 32.
pub fn prefix_len_to_mask(prefix_len: u8) -> Ipv4Addr {
    let len = u32::from(prefix_len.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - len).unwrap_or(0))
}

/// Whether `addr` is inside `network/prefix_len`.
pub fn same_subnet(network: Ipv4Addr, prefix_len: u8, addr: Ipv4Addr) -> bool {
    let mask = u32::from(prefix_len_to_mask(prefix_len));
    u32::from(network) & mask == u32::from(addr) & mask
}

/// The pre-CIDR default the kernel uses when no netmask is given: class A /8, B /16, C /24.
pub fn classful_prefix_len(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// `HOST_NAME_MAX` on Linux.
const HOSTNAME_MAX: usize = 64;

/// Checks a hostname the way RFC 1123 allows it (letters, digits, hyphens, dots between labels),
/// at most 64 bytes (what `sethostname(2)` accepts).
pub fn validate_hostname(name: &str) -> Result<(), FieldProblem> {
    if name.len() > HOSTNAME_MAX {
        return Err(FieldProblem::HostnameTooLong { len: name.len() });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(FieldProblem::HostnameBadChar { ch });
    }
    if name
        .split('.')
        .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
    {
        return Err(FieldProblem::HostnameBadLabel);
    }
    Ok(())
}

/// A Linux interface name: 1..=15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace.
fn valid_link_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn stat(addr: &str, prefix_len: u8) -> IpMode {
        IpMode::Static {
            address: ip(addr),
            prefix_len,
        }
    }

    #[test]
    fn short_forms() {
        for (value, mode) in [
            ("dhcp", IpMode::Dhcp),
            ("on", IpMode::Dhcp),
            ("any", IpMode::Dhcp),
            ("off", IpMode::Off),
            ("none", IpMode::Off),
            ("", IpMode::Off),
        ] {
            let spec = IpSpec::parse(value).unwrap();
            assert_eq!(spec.mode, mode, "ip={value}");
            assert_eq!(spec, IpSpec::with_mode(mode), "ip={value}");
        }
    }

    #[test]
    fn device_and_method_form() {
        let spec = IpSpec::parse("bond0.100:dhcp").unwrap();
        assert_eq!(spec.mode, IpMode::Dhcp);
        assert_eq!(spec.device.as_deref(), Some("bond0.100"));
        assert!(IpSpec::parse("bond0:static").is_err());
        assert!(IpSpec::parse("bad/name:dhcp").is_err());
    }

    #[test]
    fn full_static_form() {
        let spec = IpSpec::parse(
            "10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0:lb1.example.org:eth1:off:10.0.0.53:10.0.0.54:10.0.0.123",
        )
        .unwrap();
        assert_eq!(
            spec,
            IpSpec {
                mode: stat("10.0.0.5", 24),
                server: Some(ip("10.0.0.1")),
                gateway: Some(ip("10.0.0.254")),
                hostname: Some("lb1.example.org".into()),
                device: Some("eth1".into()),
                dns: vec![ip("10.0.0.53"), ip("10.0.0.54")],
                ntp: Some(ip("10.0.0.123")),
            }
        );
    }

    #[test]
    fn static_with_prefix_length_and_empty_fields() {
        let spec = IpSpec::parse("192.168.7.9::192.168.7.1:22::eth0:none").unwrap();
        assert_eq!(spec.mode, stat("192.168.7.9", 22));
        assert_eq!(spec.server, None);
        assert_eq!(spec.gateway, Some(ip("192.168.7.1")));
        assert_eq!(spec.hostname, None);
        assert_eq!(spec.device.as_deref(), Some("eth0"));
        assert!(spec.dns.is_empty());
    }

    #[test]
    fn missing_netmask_is_classful_like_the_kernel() {
        assert_eq!(IpSpec::parse("10.1.2.3").unwrap().mode, stat("10.1.2.3", 8));
        assert_eq!(
            IpSpec::parse("172.16.4.5::").unwrap().mode,
            stat("172.16.4.5", 16)
        );
        assert_eq!(
            IpSpec::parse("192.168.1.2:::::eth0:off").unwrap().mode,
            stat("192.168.1.2", 24)
        );
    }

    #[test]
    fn client_ip_wins_over_autoconf_like_the_kernel() {
        let spec = IpSpec::parse("10.0.0.5:::255.0.0.0::eth0:dhcp").unwrap();
        assert_eq!(spec.mode, stat("10.0.0.5", 8));
    }

    #[test]
    fn autoconf_without_client_ip_is_dhcp_keeping_overrides() {
        let spec = IpSpec::parse(":10.0.0.1:10.0.0.254::node3:eth2:dhcp:9.9.9.9").unwrap();
        assert_eq!(
            spec,
            IpSpec {
                mode: IpMode::Dhcp,
                server: Some(ip("10.0.0.1")),
                gateway: Some(ip("10.0.0.254")),
                hostname: Some("node3".into()),
                device: Some("eth2".into()),
                dns: vec![ip("9.9.9.9")],
                ntp: None,
            }
        );
        for autoconf in ["", "on", "any", "dhcp"] {
            let value = format!(":::::eth0:{autoconf}");
            let spec = IpSpec::parse(&value).unwrap();
            assert_eq!(spec.mode, IpMode::Dhcp, "ip={value}");
            assert_eq!(spec.device.as_deref(), Some("eth0"));
        }
    }

    #[test]
    fn zero_address_counts_as_empty() {
        let spec = IpSpec::parse("0.0.0.0:0.0.0.0:0.0.0.0::::dhcp:0.0.0.0:8.8.8.8").unwrap();
        assert_eq!(spec.mode, IpMode::Dhcp);
        assert_eq!(spec.server, None);
        assert_eq!(spec.gateway, None);
        assert_eq!(spec.dns, vec![ip("8.8.8.8")]);
    }

    #[test]
    fn only_dns1_given() {
        let spec = IpSpec::parse("::::::dhcp::1.1.1.1").unwrap();
        assert_eq!(spec.dns, vec![ip("1.1.1.1")]);
    }

    fn field_err(value: &str) -> (IpField, String, FieldProblem) {
        match IpSpec::parse(value) {
            Err(IpSpecError::Field {
                field,
                value,
                problem,
                ..
            }) => (field, value, problem),
            other => panic!("ip={value}: expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let cases: &[(&str, IpField, &str, FieldProblem)] = &[
            (
                "10.0.0.256::::::off",
                IpField::ClientIp,
                "10.0.0.256",
                FieldProblem::NotAnIpv4Address,
            ),
            (
                "10.0.0.5:server::::::",
                IpField::ServerIp,
                "server",
                FieldProblem::NotAnIpv4Address,
            ),
            (
                "10.0.0.5::224.0.0.1:24",
                IpField::GatewayIp,
                "224.0.0.1",
                FieldProblem::NotUnicast,
            ),
            (
                "255.255.255.255:::24",
                IpField::ClientIp,
                "255.255.255.255",
                FieldProblem::NotUnicast,
            ),
            (
                "10.0.0.5:::255.0.255.0",
                IpField::Netmask,
                "255.0.255.0",
                FieldProblem::NonContiguousMask,
            ),
            (
                "10.0.0.5:::33",
                IpField::Netmask,
                "33",
                FieldProblem::NotANetmask,
            ),
            (
                "10.0.0.5:::/24",
                IpField::Netmask,
                "/24",
                FieldProblem::NotANetmask,
            ),
            (
                "10.0.0.5:::24:bad_host",
                IpField::Hostname,
                "bad_host",
                FieldProblem::HostnameBadChar { ch: '_' },
            ),
            (
                "10.0.0.5:::24:-lead",
                IpField::Hostname,
                "-lead",
                FieldProblem::HostnameBadLabel,
            ),
            (
                "10.0.0.5:::24:a..b",
                IpField::Hostname,
                "a..b",
                FieldProblem::HostnameBadLabel,
            ),
            (
                "10.0.0.5:::24::averyveryverylongname0",
                IpField::Device,
                "averyveryverylongname0",
                FieldProblem::DeviceNameInvalid,
            ),
            (
                "10.0.0.5:::24::et/h0",
                IpField::Device,
                "et/h0",
                FieldProblem::DeviceNameInvalid,
            ),
            (
                ":::::eth0:bootp",
                IpField::Autoconf,
                "bootp",
                FieldProblem::UnsupportedAutoconf,
            ),
            (
                ":::::eth0:rarp",
                IpField::Autoconf,
                "rarp",
                FieldProblem::UnsupportedAutoconf,
            ),
            (
                ":::::eth0:dhcp,01,abc",
                IpField::Autoconf,
                "dhcp,01,abc",
                FieldProblem::UnsupportedAutoconf,
            ),
            (
                ":::::eth0:static",
                IpField::Autoconf,
                "static",
                FieldProblem::UnknownAutoconf,
            ),
            (
                "dhpc",
                IpField::Autoconf,
                "dhpc",
                FieldProblem::UnknownAutoconf,
            ),
            (
                "both",
                IpField::Autoconf,
                "both",
                FieldProblem::UnsupportedAutoconf,
            ),
            (
                "::::::dhcp:8.8.8",
                IpField::Dns0Ip,
                "8.8.8",
                FieldProblem::NotAnIpv4Address,
            ),
            (
                "::::::dhcp::x",
                IpField::Dns1Ip,
                "x",
                FieldProblem::NotAnIpv4Address,
            ),
            (
                "::::::dhcp:::ntp",
                IpField::Ntp0Ip,
                "ntp",
                FieldProblem::NotAnIpv4Address,
            ),
        ];
        for (value, field, bad, problem) in cases {
            let got = field_err(value);
            assert_eq!(
                got,
                (*field, bad.to_string(), problem.clone()),
                "ip={value}"
            );
        }
    }

    #[test]
    fn hostname_length_limit() {
        let ok = "a".repeat(64);
        assert!(IpSpec::parse(&format!("::::{ok}::dhcp")).is_ok());
        let long = "a".repeat(65);
        let (field, _, problem) = field_err(&format!("::::{long}::dhcp"));
        assert_eq!(field, IpField::Hostname);
        assert_eq!(problem, FieldProblem::HostnameTooLong { len: 65 });
    }

    #[test]
    fn error_messages_are_readable() {
        let e = IpSpec::parse("10.0.0.5:::255.0.255.0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip=10.0.0.5:::255.0.255.0: field 4 <netmask> = \"255.0.255.0\": mask bits are not \
             contiguous (expected e.g. 255.255.240.0)"
        );
        let e = IpSpec::parse("1:2:3:4:5:6:7:8:9:10:11").unwrap_err();
        assert!(
            matches!(e, IpSpecError::TooManyFields { count: 11, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("11 fields"), "{e}");
    }

    #[test]
    fn off_with_other_fields_is_refused() {
        let e = IpSpec::parse("::10.0.0.1:24::eth0:off").unwrap_err();
        assert_eq!(
            e,
            IpSpecError::OffWithoutClientIp {
                spec: "::10.0.0.1:24::eth0:off".into(),
                autoconf: "off".into()
            }
        );
    }

    #[test]
    fn cmdline_collects_every_ip() {
        let specs = ip_specs_from_cmdline(
            "console=ttyS0 ip=10.0.0.5:::24::eth0:off quiet ip=:::::eth1:dhcp lb.config=http://x/",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].mode, stat("10.0.0.5", 24));
        assert_eq!(specs[1].device.as_deref(), Some("eth1"));
        assert_eq!(
            ip_specs_from_cmdline("console=ttyS0 quiet").unwrap(),
            vec![]
        );
        assert_eq!(
            ip_specs_from_cmdline("ip=dhcp ip=on").unwrap_err(),
            IpSpecError::SameDeviceTwice { device: None }
        );
        assert!(matches!(
            ip_specs_from_cmdline("ip=dhcp ip=10.0.0.1:::8:"),
            Err(IpSpecError::SameDeviceTwice { .. })
        ));
        // An error in any of them is reported.
        assert!(ip_specs_from_cmdline("ip=dhcp ip=:::::eth1:bootp").is_err());
    }

    #[test]
    fn mask_helpers() {
        assert_eq!(mask_to_prefix_len(ip("255.255.255.0")), Some(24));
        assert_eq!(mask_to_prefix_len(ip("255.255.255.255")), Some(32));
        assert_eq!(mask_to_prefix_len(ip("0.0.0.0")), Some(0));
        assert_eq!(mask_to_prefix_len(ip("255.255.252.0")), Some(22));
        assert_eq!(mask_to_prefix_len(ip("255.255.0.255")), None);
        assert_eq!(mask_to_prefix_len(ip("0.255.255.255")), None);
        for len in 0..=32 {
            assert_eq!(mask_to_prefix_len(prefix_len_to_mask(len)), Some(len));
        }
        assert_eq!(prefix_len_to_mask(0), ip("0.0.0.0"));
        assert_eq!(prefix_len_to_mask(20), ip("255.255.240.0"));
        assert!(same_subnet(ip("10.0.0.5"), 24, ip("10.0.0.254")));
        assert!(!same_subnet(ip("10.0.0.5"), 24, ip("10.0.1.1")));
        assert!(same_subnet(ip("10.0.0.5"), 0, ip("8.8.8.8")));
        assert_eq!(classful_prefix_len(ip("127.0.0.1")), 8);
        assert_eq!(classful_prefix_len(ip("128.0.0.1")), 16);
        assert_eq!(classful_prefix_len(ip("191.255.0.1")), 16);
        assert_eq!(classful_prefix_len(ip("192.0.2.1")), 24);
    }
}
