//! The anchor: keepalived doing what lbd does, started in each guest, for the VRRP scenarios
//! to be compared with.

use super::{
    write_replacing, Balancer, Lab, Layout, Member, Services, CONFIG_PORT, GATEWAY, REALS, SERVER,
    VIP, VRID, VRID_INSIDE,
};

/// keepalived.conf for `m`: what lbd's config says, as keepalived says it — the IPv4
/// instance (VRRP v3, 1 s adverts, preemption, 5 gratuitous ARPs), connection sync following
/// it, and the services with the same reals, weights and health check (inhibit on failure);
/// in the NAT layout the gateway instance too, with the first in a sync group.
pub fn keepalived_conf(m: &Member, services: &Services, layout: Layout) -> String {
    let mut text = format!(
        "global_defs {{\n    router_id {name}\n    vrrp_version 3\n    vrrp_garp_master_repeat 5\n    \
         lvs_sync_daemon eth0 VI_1 id {VRID}\n}}\n\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {VRID}\n    \
         priority {priority}\n    advert_int 1\n    virtual_ipaddress {{\n        {VIP}/32 dev eth0\n    }}\n}}\n",
        name = m.name,
        priority = m.priority,
    );
    if layout == Layout::Nat {
        text.push_str(&format!(
            "\nvrrp_instance VI_2 {{\n    state BACKUP\n    interface eth1\n    virtual_router_id {VRID_INSIDE}\n    \
             priority {priority}\n    advert_int 1\n    virtual_ipaddress {{\n        {GATEWAY}/24 dev eth1\n    }}\n}}\n\n\
             vrrp_sync_group PAIR {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}\n",
            priority = m.priority,
        ));
    }
    let kind = match layout {
        Layout::Dr => "DR",
        Layout::Nat => "NAT",
    };
    for (port, reals, checked) in [(80, &services.web, true), (9000, &services.echo, false)] {
        text.push_str(&format!(
            "\nvirtual_server {VIP} {port} {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind {kind}\n    protocol TCP\n"
        ));
        for &(i, weight) in reals {
            let check = if checked {
                "        HTTP_GET {\n            url {\n                path /health\n                status_code 200\n            }\n            \
                 connect_port 8080\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }\n"
            } else {
                ""
            };
            text.push_str(&format!(
                "    real_server {} {port} {{\n        weight {weight}\n        inhibit_on_failure\n{check}    }}\n",
                REALS[i].addr_in(layout)
            ));
        }
        text.push_str("}\n");
    }
    text
}

impl Lab {
    /// Starts keepalived in `b` with [`keepalived_conf`] (fetched from the config server).
    pub fn start_keepalived(&self, b: &mut Balancer) -> Result<(), String> {
        let name = format!("keepalived-{}.conf", b.member.name);
        write_replacing(
            &self.configs().join(&name),
            keepalived_conf(&b.member, &Services::default(), self.setup.layout).as_bytes(),
        )?;
        b.sh(&format!(
            "wget -q -O /tmp/keepalived.conf http://{SERVER}:{CONFIG_PORT}/{name} && \
             (keepalived --dont-fork --log-console --log-detail -f /tmp/keepalived.conf \
              --pid /tmp/keepalived.pid --vrrp_pid /tmp/keepalived-vrrp.pid \
              --checkers_pid /tmp/keepalived-check.pid \
              </dev/null >/tmp/keepalived.log 2>&1 &) && sleep 1 && pidof keepalived"
        ))
        .map(|_| ())
        .map_err(|e| format!("keepalived did not start: {e}"))
    }
}
