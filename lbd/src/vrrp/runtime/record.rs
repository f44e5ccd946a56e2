//! Record mode (`LBD_VRRP_RECORD=DIR`): every input of the router and the actions it answered
//! with, so a field problem can be replayed against the pure state machine.

use crate::vrrp::machine::Action;
use crate::vrrp::router::Input;
use std::io::Write;
use std::time::Duration;

/// Records inputs and outputs as JSON lines (`LBD_VRRP_RECORD=DIR`): `DIR/input.jsonl` holds
/// `[time, input]` per line, `DIR/output.jsonl` the actions of that step.
pub(super) struct Recorder {
    input: std::fs::File,
    output: std::fs::File,
}

impl Recorder {
    pub(super) fn open(dir: &str) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        Ok(Recorder {
            input: std::fs::File::create(format!("{dir}/input.jsonl"))?,
            output: std::fs::File::create(format!("{dir}/output.jsonl"))?,
        })
    }

    pub(super) fn write(&mut self, now: Duration, input: &Input, actions: &[Action]) {
        let i = serde_json::to_string(&(now, input)).unwrap_or_default();
        let o = serde_json::to_string(actions).unwrap_or_default();
        let _ = writeln!(self.input, "{i}");
        let _ = writeln!(self.output, "{o}");
    }
}
