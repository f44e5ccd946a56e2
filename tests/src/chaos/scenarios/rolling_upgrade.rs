//! Both balancers rebooted in turn into the next image, with a planned handover between,
//! while connection sync carries the established connections.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::takeovers::{check_takeovers, master_index};
use super::{no_loss, SPLIT_BRAIN_LIMIT, STEP};
use crate::chaos::analysis::ms;
use crate::chaos::lab::{Services, MEMBERS, NEXT_RELEASE, RELEASE_FILE, VIP};
use crate::chaos::{Chaos, Report};

/// Connection entries of the client's long connections (echo service) that `who` holds in
/// state ESTABLISHED: its own, or synced from the master.
fn synced_connections(c: &mut Chaos, who: usize) -> Result<usize, String> {
    let conns = c.pair[who].sh("ipvsadm -Lnc")?;
    let client = format!(" {}:", crate::chaos::lab::CLIENT);
    let echo = format!(" {VIP}:9000 ");
    Ok(conns
        .lines()
        .filter(|l| l.contains("ESTABLISHED") && l.contains(&client) && l.contains(&echo))
        .count())
}

/// Reboots balancer `who` the orderly way (the power button: init stops lbd, which hands
/// over if master) into `image`, and waits until its lbd programmed IPVS.
fn reboot(c: &mut Chaos, who: usize, image: &crate::appliance::Image) -> Result<Duration, String> {
    let started = Instant::now();
    let m = MEMBERS[who];
    c.pair[who]
        .guest
        .guest
        .system_powerdown()
        .map_err(|e| format!("{}: power button: {e}", m.name))?;
    c.pair[who]
        .guest
        .guest
        .wait_exit(STEP)
        .map_err(|e| format!("{}: {e}", m.name))?;
    let fresh = crate::chaos::lab::Balancer::boot(&c.lab, image, m, crate::chaos::BOOT)?;
    c.pair[who] = fresh;
    c.pair[who]
        .guest
        .guest
        .expect(r"lbd:\s+INFO ipvs applied: .* 0 errors", crate::chaos::BOOT)
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// Waits until `who` holds an entry for every long connection (synced from the master).
fn wait_synced(c: &mut Chaos, who: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let want = c.load.connections();
    let mut got = 0;
    crate::wait::until(STEP, Duration::from_millis(500), || {
        got = synced_connections(c, who).unwrap_or(0);
        got >= want
    })
    .map(|_| started.elapsed())
    .ok_or_else(|| {
        format!(
            "{} holds {got} of the {want} long connections' entries after {STEP:?}",
            MEMBERS[who].name
        )
    })
}

/// Waits until `who` is master on the wire.
fn wait_master(c: &Chaos, who: usize) -> Result<Duration, String> {
    let started = Instant::now();
    crate::wait::until(STEP, Duration::from_millis(200), || {
        master_index(c) == who && {
            let runs = c.masterships();
            runs.last()
                .is_some_and(|r| r.source == IpAddr::V4(MEMBERS[who].addr))
        }
    })
    .map(|_| started.elapsed())
    .ok_or_else(|| {
        format!(
            "{} did not become master within {STEP:?}",
            MEMBERS[who].name
        )
    })
}

/// The upgrade procedure of the README, with the long connections running throughout.
pub(super) fn rolling_upgrade(c: &mut Chaos, report: &mut Report) -> Result<(), String> {
    if c.next_image.is_none() {
        c.next_image = Some(c.lab.next_image()?);
    }
    // Back and forth between the two images, round after round.
    let (image, release) = if c.running_next {
        (c.image.clone(), None)
    } else {
        (
            c.next_image.clone().expect("built above"),
            Some(NEXT_RELEASE.trim()),
        )
    };
    c.settle()?;
    let from = Instant::now();
    let marks = c.marks();
    let services = Services::default();
    let mut steps = Vec::new();
    let at = |from: Instant| from.elapsed().as_secs_f64();
    // 1. The backup reboots into the new image and syncs the established connections.
    reboot(c, 1, &image)?;
    steps.push(format!(
        "lb2 rebooted into {} by {:.1} s",
        running_release(c, 1, release)?,
        at(from)
    ));
    wait_synced(c, 1)?;
    steps.push(format!("lb2 synced every connection by {:.1} s", at(from)));
    // 2. Planned handover: the master's priority lowered below the backup's.
    c.lab.set_priority(&MEMBERS[0], Some(50), &services)?;
    steps.push(format!("lb1's priority lowered at {:.1} s", at(from)));
    wait_master(c, 1)?;
    steps.push(format!("lb2 master by {:.1} s", at(from)));
    // 3. The old master reboots (keeping the lowered priority, so it comes back as backup
    // and cannot take the VIP before it holds the connections) and syncs.
    reboot(c, 0, &image)?;
    steps.push(format!(
        "lb1 rebooted into {} by {:.1} s",
        running_release(c, 0, release)?,
        at(from)
    ));
    c.running_next = release.is_some();
    wait_synced(c, 0)?;
    steps.push(format!("lb1 synced by {:.1} s", at(from)));
    // 4. Its priority back: it preempts, the pair is as before.
    c.lab.set_priority(&MEMBERS[0], None, &services)?;
    steps.push(format!("lb1's priority restored at {:.1} s", at(from)));
    wait_master(c, 0)?;
    steps.push(format!("lb1 master by {:.1} s", at(from)));
    c.settle()?;
    let to = Instant::now();
    // The console marks of the rebooted guests restart at 0.
    let _ = marks;
    let mut row = c.measure("rolling upgrade".into(), from, to, [0, 0]);
    row.notes.extend(steps);
    if !row.takeovers.is_empty() {
        row.notes
            .push(format!("takeovers {}", row.takeovers.join(", ")));
    }
    check_takeovers(c, &mut row, from, to, report);
    no_loss(report, &row, "rolling upgrade");
    if row.split_brain.1 > SPLIT_BRAIN_LIMIT {
        report.violations.push(format!(
            "rolling upgrade: two masters for {} ms",
            ms(row.split_brain.1)
        ));
    }
    report.rows.push(row);
    Ok(())
}

/// What `who` runs, checked against `want` (`None`: the first image, without a release file).
fn running_release(c: &mut Chaos, who: usize, want: Option<&str>) -> Result<String, String> {
    let out = c.pair[who].sh(&format!("cat {RELEASE_FILE} 2>/dev/null || echo none"))?;
    let got = out.trim();
    let expected = want.unwrap_or("none");
    if got != expected {
        return Err(format!(
            "{} runs release {got:?} after the reboot, not {expected:?}",
            MEMBERS[who].name
        ));
    }
    Ok(match want {
        Some(r) => format!("the next image ({RELEASE_FILE}: {r})"),
        None => "the first image again".into(),
    })
}
