//! The IPVS table the IPVS benchmarks program: one VIP, `services` TCP services on ports 1 to
//! `services`, each with `reals` direct-routed reals, weighted round robin. As an lbd config and
//! as `ipvsadm -R` rules.

/// lbd's config for the table; `changed_weight` sets the first real of the first service to
/// another weight (a one-real change).
pub fn config_text(services: u32, reals: u32, changed_weight: Option<u32>) -> String {
    let mut t = String::from(
        "[vrrp.instance.BENCH]\ninterface = \"eth0\"\nvrid = 9\npriority = 100\nvips = [\"10.10.0.1/32\"]\n",
    );
    for s in 0..services {
        t += &format!(
            "[service.s{s}]\nvip = \"10.10.0.1:{}\"\nscheduler = \"wrr\"\nforwarding = \"dr\"\n",
            s + 1
        );
        for r in 0..reals {
            let weight = match (s, r, changed_weight) {
                (0, 0, Some(w)) => w,
                _ => 1,
            };
            t += &format!(
                "[[service.s{s}.real]]\naddress = \"10.20.{}.{}:{}\"\nweight = {weight}\n",
                r / 250,
                r % 250 + 1,
                s + 1
            );
        }
    }
    t
}

/// The same table as `ipvsadm -R` input.
pub fn ipvsadm_rules(services: u32, reals: u32) -> String {
    let mut t = String::new();
    for s in 0..services {
        t += &format!("-A -t 10.10.0.1:{} -s wrr\n", s + 1);
        for r in 0..reals {
            t += &format!(
                "-a -t 10.10.0.1:{} -r 10.20.{}.{}:{} -g -w 1\n",
                s + 1,
                r / 250,
                r % 250 + 1,
                s + 1
            );
        }
    }
    t
}
