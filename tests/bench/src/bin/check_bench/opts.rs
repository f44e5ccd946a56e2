//! The command line.

#[derive(Clone, Debug)]
pub struct Opts {
    pub reals: usize,
    pub ports: usize,
    pub seconds: u64,
    pub kills: usize,
    pub fall: u32,
    pub kinds: Vec<String>,
    /// The check thread behind a veth pair (true) or on the servers' loopback.
    pub veth: bool,
    /// Queues (receive rings and NAPI threads) per veth end.
    pub veth_queues: u32,
    /// Run by the parent for one kind: no closing notes.
    pub child: bool,
}

/// The options in `args`; an empty error asks for the usage alone (`--help`).
pub fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        reals: 10_000,
        ports: 10,
        seconds: 20,
        kills: 200,
        fall: 1,
        kinds: vec!["tcp".into(), "http".into()],
        veth: true,
        veth_queues: 1,
        child: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: {v:?} is not a number"))
        };
        match a.as_str() {
            "--reals" => o.reals = num(val(a)?, a)? as usize,
            "--ports-per-address" => o.ports = num(val(a)?, a)?.max(1) as usize,
            "--seconds" => o.seconds = num(val(a)?, a)?.max(1),
            "--kills" => o.kills = num(val(a)?, a)? as usize,
            "--fall" => o.fall = num(val(a)?, a)?.clamp(1, 100) as u32,
            "--kind" => o.kinds = kinds(&val(a)?)?,
            "--topology" => {
                o.veth = match val(a)?.as_str() {
                    "veth" => true,
                    "loopback" => false,
                    t => return Err(format!("--topology {t}: use veth or loopback")),
                }
            }
            "--veth-queues" => o.veth_queues = num(val(a)?, a)?.clamp(1, 16) as u32,
            "--child" => o.child = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.kills > o.reals {
        o.kills = o.reals;
    }
    Ok(o)
}

/// The kinds `--kind` names.
fn kinds(kind: &str) -> Result<Vec<String>, String> {
    Ok(match kind {
        "both" => vec!["tcp".into(), "http".into()],
        "all" => vec![
            "tcp".into(),
            "half-open".into(),
            "http".into(),
            "http-keepalive".into(),
        ],
        k @ ("tcp" | "half-open" | "http" | "http-keepalive") => vec![k.into()],
        k => {
            return Err(format!(
                "--kind {k}: use tcp, half-open, http, http-keepalive, both (tcp and http) or all"
            ))
        }
    })
}
