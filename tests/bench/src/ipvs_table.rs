//! The IPVS table the IPVS benchmarks program: one VIP, `services` TCP services on ports 1 to
//! `services`, each with `reals` direct-routed reals, weighted round robin. As an lbd config and
//! as `ipvsadm -R` rules.

use lbd::config::Config;
use lbd::ipvs::msg::Encoded;
use lbd::reconcile::{
    self, Drains, KeptDesired, KernelState, Overrides, PlanCounts, RealHealth, SyncRole,
};
use std::collections::BTreeSet;
use std::time::Instant;

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

/// A full apply planned against an empty kernel, before the exchange: what the IPVS
/// subsystem holds while the kernel carries the requests out.
pub struct Planned {
    kept: KeptDesired,
    drains: Drains,
    kernel: KernelState,
    ops: Vec<reconcile::Op>,
    /// The requests, as sent.
    pub requests: Encoded,
}

/// Planning a full apply against an empty kernel, as the IPVS subsystem does it.
pub fn plan_from_empty(config: &Config) -> Planned {
    let mut kept = KeptDesired::new();
    let mut drains = Drains::new();
    let kernel = KernelState::default();
    let scope = kept.update(
        config,
        &RealHealth::default(),
        &Overrides::default(),
        SyncRole::Master,
    );
    kept.set_owned_before(BTreeSet::new());
    drains.update(
        kept.desired_mut(),
        config,
        &kernel,
        &scope,
        Instant::now(),
        config.ipvs.removal_drain,
    );
    let desired = kept.desired();
    let ops = reconcile::plan_in(desired, &kernel, &scope);
    std::hint::black_box(reconcile::moves(&ops).len());
    let requests = Encoded::of(ops.iter());
    Planned {
        kept,
        drains,
        kernel,
        ops,
        requests,
    }
}

impl Planned {
    /// Records every operation as done, as the subsystem does after the exchange (which keeps
    /// the kernel model and desired state for the next apply); the number of operations.
    pub fn record(&mut self) -> usize {
        let counts = PlanCounts::of(&self.ops);
        self.kernel.apply_all(&self.ops);
        self.drains.prune(&self.kernel);
        std::hint::black_box((&self.kept, &self.kernel));
        counts.total()
    }
}
