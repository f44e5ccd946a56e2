//! Power: what ends the box (Ctrl-Alt-Del, the ACPI power button, signals) and the last steps
//! before reboot(2): stop every process, sync, then reboot / power off / halt.

use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How the box ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    PowerOff,
    Halt,
}

impl PowerAction {
    /// busybox init's convention, which operators of small appliances know: SIGTERM and
    /// SIGINT (Ctrl-Alt-Del) reboot, SIGUSR1 halts, SIGUSR2 powers off.
    pub fn for_signal(sig: Signal) -> Option<PowerAction> {
        match sig {
            Signal::SIGTERM | Signal::SIGINT => Some(PowerAction::Reboot),
            Signal::SIGUSR1 => Some(PowerAction::Halt),
            Signal::SIGUSR2 => Some(PowerAction::PowerOff),
            _ => None,
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            PowerAction::Reboot => "reboot",
            PowerAction::PowerOff => "power off",
            PowerAction::Halt => "halt",
        }
    }
}

/// Sends SIGTERM to every process but PID 1, waits up to `grace` (reaping), then SIGKILLs the rest.
pub fn terminate_everything(grace: Duration) {
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        crate::supervise::reap_all();
        // ECHILD: no children left.
        if matches!(
            nix::sys::wait::waitpid(
                Pid::from_raw(-1),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG)
            ),
            Err(nix::errno::Errno::ECHILD)
        ) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(100));
    crate::supervise::reap_all();
}

/// The last call of PID 1: sync and reboot(2). Never returns.
pub fn finish(action: PowerAction) -> ! {
    crate::console::drain(Duration::from_secs(2));
    nix::unistd::sync();
    let mode = match action {
        PowerAction::Reboot => RebootMode::RB_AUTOBOOT,
        PowerAction::PowerOff => RebootMode::RB_POWER_OFF,
        PowerAction::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    let err = reboot(mode);
    // Only reached if reboot(2) failed: PID 1 must not exit, so wait forever.
    tracing::error!("reboot(2) failed: {err:?}; halting here");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// linux/input-event-codes.h
const EV_KEY: u16 = 0x01;
const KEY_POWER: u16 = 116;
/// struct input_event on 64-bit: struct timeval (16 bytes), u16 type, u16 code, i32 value.
const INPUT_EVENT_SIZE: usize = 24;

/// Whether a raw input_event is a power-key press.
pub fn is_power_press(event: &[u8; INPUT_EVENT_SIZE]) -> bool {
    let kind = u16::from_ne_bytes([event[16], event[17]]);
    let code = u16::from_ne_bytes([event[18], event[19]]);
    let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
    kind == EV_KEY && code == KEY_POWER && value == 1
}

/// Watches every `/dev/input/event*` for the power key (QEMU's `system_powerdown`, a real
/// button) on a thread each, and sends `PowerOff` when pressed.
pub fn watch_power_button(tx: UnboundedSender<PowerAction>) -> usize {
    let Ok(entries) = std::fs::read_dir("/dev/input") else {
        return 0;
    };
    let devices: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("event"))
        })
        .collect();
    let mut watching = 0;
    for dev in devices {
        let Ok(mut file) = std::fs::File::open(&dev) else {
            continue;
        };
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("power-button".into())
            .spawn(move || {
                let mut buf = [0u8; INPUT_EVENT_SIZE];
                while file.read_exact(&mut buf).is_ok() {
                    if is_power_press(&buf) && tx.send(PowerAction::PowerOff).is_err() {
                        return;
                    }
                }
            });
        if spawned.is_ok() {
            watching += 1;
        }
    }
    watching
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_key_press_is_recognised() {
        let mut ev = [0u8; INPUT_EVENT_SIZE];
        ev[16..18].copy_from_slice(&EV_KEY.to_ne_bytes());
        ev[18..20].copy_from_slice(&KEY_POWER.to_ne_bytes());
        ev[20..24].copy_from_slice(&1i32.to_ne_bytes());
        assert!(is_power_press(&ev));
        ev[20..24].copy_from_slice(&0i32.to_ne_bytes()); // release
        assert!(!is_power_press(&ev));
    }

    #[test]
    fn signals_map_like_busybox_init() {
        assert_eq!(
            PowerAction::for_signal(Signal::SIGINT),
            Some(PowerAction::Reboot)
        );
        assert_eq!(
            PowerAction::for_signal(Signal::SIGUSR2),
            Some(PowerAction::PowerOff)
        );
        assert_eq!(PowerAction::for_signal(Signal::SIGHUP), None);
    }
}
