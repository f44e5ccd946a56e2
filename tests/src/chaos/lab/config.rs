//! lbd's config for each balancer, as the lab signs and serves it.

use super::{
    Layout, Member, Services, VrrpBy, GATEWAY, MEMBERS, REALS, VIP, VIP6, VIP_UNICAST, VRID, VRID6,
    VRID_INSIDE, VRID_UNICAST,
};

/// The config of `m` with `serial` (see the module doc for the layout).
pub fn config_text(m: &Member, serial: u64, services: &Services, layout: Layout) -> String {
    config_with_priority(m, m.priority, serial, services, VrrpBy::Lbd, layout)
}

/// [`config_text`] with another VRRP priority (a planned handover lowers the master's), and
/// without any VRRP when keepalived does it.
pub fn config_with_priority(
    m: &Member,
    priority: u8,
    serial: u64,
    services: &Services,
    vrrp: VrrpBy,
    layout: Layout,
) -> String {
    let mut text = format!(
        r#"[release]
serial = {serial}
node = "{mac}"

[node]
hostname = "{name}"

[node.sysctl]
"net.ipv4.ip_forward" = 1

"#,
        mac = m.mac,
        name = m.name,
    );
    if layout == Layout::Nat {
        // The boot names eth0 (ip=); the config names both, as a NAT pair's config does.
        text.push_str(&format!(
            "[network.link.eth0]\naddresses = [\"{}/24\"]\n\n[network.link.eth1]\naddresses = [\"{}/24\"]\n",
            m.addr, m.inside_addr
        ));
    }
    if vrrp == VrrpBy::Keepalived {
        // keepalived does it all; lbd leaves its table and sync daemon alone.
        return text;
    }
    text.push_str(
        r#"
[ipvs]
# Reals the storm removes drain for at most this long (connections finish, no new ones).
removal_drain = "5s"
"#,
    );
    text.push_str(&lbd_vrrp(m, priority, layout));
    text.push_str(
        r#"
[check.health]
type = "http"
port = 8080
path = "/health"
interval = "1s"
timeout = "800ms"
rise = 2
fall = 2
"#,
    );
    let forwarding = layout.forwarding();
    for (service, port, reals, check) in [
        ("web", 80, &services.web, "\ncheck = \"health\""),
        ("echo", 9000, &services.echo, ""),
    ] {
        text.push_str(&format!(
            "\n[service.{service}]\nvip = \"{VIP}:{port}\"\nscheduler = \"wrr\"\nforwarding = \"{forwarding}\"\non_failure = \"inhibit\"{check}\n"
        ));
        for &(i, weight) in reals {
            text.push_str(&format!(
                "\n[[service.{service}.real]]\naddress = \"{}\"\nweight = {weight}\n",
                REALS[i].addr_in(layout)
            ));
        }
    }
    text
}

/// lbd's VRRP part: the instance of the VIP with connection sync following it, a unicast
/// instance and an IPv6 one, and in the NAT layout the gateway's, all in one sync group.
fn lbd_vrrp(m: &Member, priority: u8, layout: Layout) -> String {
    let (inside, members) = match layout {
        Layout::Dr => (String::new(), r#""VI_1", "VI_U", "VI_6""#),
        Layout::Nat => (
            format!(
                r#"
# The NAT reals' default route.
[vrrp.instance.VI_IN]
interface = "eth1"
vrid = {VRID_INSIDE}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{GATEWAY}/24"]
"#
            ),
            r#""VI_1", "VI_U", "VI_6", "VI_IN""#,
        ),
    };
    format!(
        r#"
[ipvs.sync]
interface = "eth0"
sync_id = {VRID}
follow = "VI_1"

[vrrp.instance.VI_1]
interface = "eth0"
vrid = {VRID}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{VIP}/32"]

# The same pair over unicast: adverts to the peer only.
[vrrp.instance.VI_U]
interface = "eth0"
vrid = {VRID_UNICAST}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{VIP_UNICAST}/32"]
unicast_peers = ["{peer}"]

[vrrp.instance.VI_6]
interface = "eth0"
vrid = {VRID6}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{VIP6}/128"]
{inside}
[vrrp.sync_group.PAIR]
instances = [{members}]
"#,
        peer = MEMBERS
            .iter()
            .find(|p| p.name != m.name)
            .expect("a pair")
            .addr,
    )
}

/// The file a member's config is served as (`${mac_hyphen}.toml`).
pub fn config_file(m: &Member) -> String {
    format!("{}.toml", m.mac.to_string().replace(':', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::lab::keepalived_conf;

    #[test]
    fn configs_differ_by_serial_and_services() {
        let a = config_text(&MEMBERS[0], 1, &Services::default(), Layout::Dr);
        assert!(a.contains("serial = 1\nnode = \"52:54:00:72:00:11\""));
        assert!(a.contains("priority = 150"));
        assert_eq!(a.matches("[[service.web.real]]").count(), 2);
        assert!(!a.contains("[network") && !a.contains("VI_IN"));
        let k = keepalived_conf(&MEMBERS[1], &Services::default(), Layout::Dr);
        assert!(k.contains("virtual_router_id 72") && k.contains("priority 100"));
        assert!(k.contains("10.72.0.100/32 dev eth0"));
        assert!(k.contains("lvs_sync_daemon eth0 VI_1 id 72"));
        assert_eq!(k.matches("real_server").count(), 4);
        assert_eq!(k.matches("HTTP_GET").count(), 2);
        assert_eq!(k.matches('{').count(), k.matches('}').count());
        let idle = config_with_priority(
            &MEMBERS[0],
            150,
            1,
            &Services::default(),
            VrrpBy::Keepalived,
            Layout::Dr,
        );
        assert!(!idle.contains("[vrrp") && !idle.contains("[service") && !idle.contains("[ipvs"));
        let b = config_text(&MEMBERS[0], 2, &Services::storm_alternate(), Layout::Dr);
        assert_eq!(b.matches("[[service.echo.real]]").count(), 3);
        assert!(b.contains("address = \"10.72.0.23\"\nweight = 1"));
    }

    #[test]
    fn the_nat_layout_adds_the_inside_link_and_the_gateway_to_the_group() {
        let a = config_text(&MEMBERS[1], 1, &Services::default(), Layout::Nat);
        assert!(a.contains("[network.link.eth1]\naddresses = [\"10.73.0.12/24\"]"));
        assert!(a.contains("[network.link.eth0]\naddresses = [\"10.72.0.12/24\"]"));
        assert!(a.contains("interface = \"eth1\"\nvrid = 75\npriority = 100"));
        assert!(a.contains("vips = [\"10.73.0.1/24\"]"));
        assert!(a.contains("instances = [\"VI_1\", \"VI_U\", \"VI_6\", \"VI_IN\"]"));
        assert_eq!(a.matches("forwarding = \"nat\"").count(), 2);
        assert!(!a.contains("forwarding = \"dr\""));
        assert!(a.contains("address = \"10.73.0.21\"") && !a.contains("10.72.0.21"));
        let k = keepalived_conf(&MEMBERS[0], &Services::default(), Layout::Nat);
        assert!(k.contains("virtual_router_id 75") && k.contains("10.73.0.1/24 dev eth1"));
        assert!(k.contains("vrrp_sync_group PAIR"));
        assert_eq!(k.matches("lb_kind NAT").count(), 2);
        assert!(k.contains("real_server 10.73.0.22 80"));
        assert_eq!(k.matches('{').count(), k.matches('}').count());
        // keepalived's node config still names the inside address (init applies it).
        let idle = config_with_priority(
            &MEMBERS[0],
            150,
            1,
            &Services::default(),
            VrrpBy::Keepalived,
            Layout::Nat,
        );
        assert!(idle.contains("10.73.0.11/24") && !idle.contains("[vrrp"));
        assert_eq!(Layout::parse("nat"), Some(Layout::Nat));
        assert_eq!(Layout::parse("dr"), Some(Layout::Dr));
        assert_eq!(Layout::parse("tun"), None);
    }
}
