//! The config server gone, then misbehaving in every way it can, then serving configs that
//! must not be applied: the balancers keep the last good config and say why.

use std::time::{Duration, Instant};

use super::tables::wait_tables;
use super::{lines_with, no_loss, spurious};
use crate::chaos::analysis::ms;
use crate::chaos::lab::{Services, MEMBERS};
use crate::chaos::{Chaos, Report};
use crate::config_server::Mode;

/// A config server fault: how the server misbehaves, or what bad config it serves.
#[derive(Clone, Debug)]
enum ServerFault {
    Mode(&'static str, Mode),
    Unsigned,
    Invalid,
}

pub(super) fn config_server(
    c: &mut Chaos,
    gone_for: Duration,
    report: &mut Report,
) -> Result<(), String> {
    c.settle()?;
    server_gone(c, gone_for, report)?;
    // Each misbehaviour for a while, with a new config waiting behind it; then served.
    let hold = (gone_for / 2).max(Duration::from_secs(5));
    let mut flip = false;
    for fault in server_faults() {
        flip = !flip;
        let good = if flip {
            Services::default()
        } else {
            Services::storm_alternate()
        };
        fault_round(c, &fault, &good, hold, report)?;
    }
    back_to_default(c, report)
}

/// Gone for a long time, then back with a new config.
fn server_gone(c: &mut Chaos, gone_for: Duration, report: &mut Report) -> Result<(), String> {
    let marks = c.marks();
    let from = Instant::now();
    c.lab.server_mode(Mode::Gone)?;
    c.lab.publish_all(&Services::storm_alternate())?;
    std::thread::sleep(gone_for);
    let applied_while_gone: usize = (0..2)
        .map(|w| lines_with(c, w, marks[w], "reloaded config").len())
        .sum();
    let back = Instant::now();
    c.lab.server_mode(Mode::Serve)?;
    let converged = wait_tables(c, &Services::storm_alternate())?;
    c.settle()?;
    let mut row = c.measure(
        format!(
            "server gone for {:.0} s, then back with a new config",
            gone_for.as_secs_f64()
        ),
        from,
        Instant::now(),
        marks,
    );
    row.notes.push(format!(
        "new config in both tables {} ms after the server came back",
        ms(converged)
    ));
    let _ = back;
    if applied_while_gone > 0 {
        report.violations.push(format!(
            "{applied_while_gone} configs applied while the server was gone"
        ));
    }
    no_loss(report, &row, "config server gone");
    spurious(report, &mut row);
    report.rows.push(row);
    Ok(())
}

/// The misbehaviours, in the order they are injected.
fn server_faults() -> [ServerFault; 8] {
    [
        ServerFault::Mode("garbage", Mode::Garbage),
        ServerFault::Mode("truncated body", Mode::Truncated),
        ServerFault::Mode("1 GiB body", Mode::Huge(1 << 30)),
        ServerFault::Mode(
            "1 GiB body, length not declared",
            Mode::HugeUndeclared(1 << 30),
        ),
        ServerFault::Mode(
            "1 byte a second",
            Mode::Slow {
                bytes_per_second: 1,
            },
        ),
        ServerFault::Mode("no answer", Mode::Blackhole),
        ServerFault::Unsigned,
        ServerFault::Invalid,
    ]
}

/// One round: `fault` for `hold` with `good` published behind it, then the server serving
/// properly again, when `good` must be applied.
fn fault_round(
    c: &mut Chaos,
    fault: &ServerFault,
    good: &Services,
    hold: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let marks = c.marks();
    let from = Instant::now();
    let label = inject(c, fault, good)?;
    std::thread::sleep(hold);
    let (applied, said) = during_fault(c, marks, &label, report);
    // Served properly again, with a good config: it must be applied.
    c.lab.server_mode(Mode::Serve)?;
    c.lab.publish_all(good)?;
    let converged = wait_tables(c, good)?;
    let mut row = c.measure(label.clone(), from, Instant::now(), marks);
    row.notes.push(format!(
        "good config in both tables {} ms after the server recovered",
        ms(converged)
    ));
    row.notes.extend(said);
    if applied > 0 {
        report.violations.push(format!(
            "{label}: {applied} configs applied during the fault"
        ));
    }
    no_loss(report, &row, "config server fault");
    spurious(report, &mut row);
    report.rows.push(row);
    Ok(())
}

/// Starts `fault`, with `good` as the config the server would serve; the round's label.
fn inject(c: &mut Chaos, fault: &ServerFault, good: &Services) -> Result<String, String> {
    Ok(match fault {
        ServerFault::Mode(label, mode) => {
            // The fault first: a poll between publishing and the mode switch would fetch
            // `good` from a server still serving properly, an apply the round then counts
            // as one during the fault.
            c.lab.server_mode(*mode)?;
            c.lab.publish_all(good)?;
            label.to_string()
        }
        ServerFault::Unsigned => {
            for m in &MEMBERS {
                let serial = c.lab.serial(m) + 1;
                let text = c.lab.config_for(m, serial, good);
                c.lab.publish_raw(m, &text, false)?;
            }
            "a valid config without its signature".to_string()
        }
        ServerFault::Invalid => {
            for m in &MEMBERS {
                let serial = c.lab.serial(m) + 1;
                let text = c
                    .lab
                    .config_for(m, serial, good)
                    .replace("scheduler = \"wrr\"", "scheduler = \"fastest\"");
                let key_signed = true;
                c.lab.publish_raw(m, &text, key_signed)?;
            }
            "a signed config that does not validate".to_string()
        }
    })
}

/// What the balancers did since `marks`, during the fault `label`: how many configs they
/// applied, and the first warning or error each printed. Repeated refusals and an lbd that
/// exited are violations.
fn during_fault(
    c: &Chaos,
    marks: [usize; 2],
    label: &str,
    report: &mut Report,
) -> (usize, Vec<String>) {
    let mut applied = 0;
    let mut said = Vec::new();
    for who in 0..2 {
        applied += lines_with(c, who, marks[who], "reloaded config").len();
        if let Some(l) = c.pair[who]
            .console_since(marks[who])
            .into_iter()
            .find(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            said.push(format!("{} said: {}", MEMBERS[who].name, cause(&l)));
        }
        // One line per distinct cause, however often init polls.
        let refusals = lines_with(c, who, marks[who], "refused new config").len();
        if refusals > 2 {
            report.violations.push(format!(
                "{label}: {} logged {refusals} refusals for one fault",
                MEMBERS[who].name
            ));
        }
        if !lines_with(c, who, marks[who], "lbd exited").is_empty() {
            report
                .violations
                .push(format!("{label}: lbd exited on {}", MEMBERS[who].name));
        }
    }
    (applied, said)
}

/// Back to the default services, as every scenario starts; init's memory after the faults.
fn back_to_default(c: &mut Chaos, report: &mut Report) -> Result<(), String> {
    c.lab.publish_all(&Services::default())?;
    wait_tables(c, &Services::default())?;
    for (who, m) in MEMBERS.iter().enumerate() {
        let s = c.pair[who].stats()?;
        report.figures.push(format!(
            "{}: init RSS {} KiB after the faults (the 1 GiB bodies were cut at init's limit)",
            m.name, s.init.rss_kib
        ));
    }
    c.settle()?;
    Ok(())
}

/// The end of a refusal line: the innermost cause (after the last URL), at most 160 chars.
fn cause(line: &str) -> String {
    let from = line
        .rfind(".toml: ")
        .map_or(0, |i| i + 7)
        .max(line.rfind(".sig: ").map_or(0, |i| i + 6));
    let text = line[from..].trim();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 160 {
        format!("…{}", chars[chars.len() - 160..].iter().collect::<String>())
    } else {
        text.to_string()
    }
}
