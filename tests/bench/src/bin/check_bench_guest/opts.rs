//! The command line, and what it chooses between: the kinds of check and the checkers.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Tcp,
    /// lbd's `half_open = true` (keepalived has no such check: its figure is its TCP_CHECK's).
    TcpHalfOpen,
    Http,
    /// lbd's `keep_alive = true` (keepalived connects every time: its figure is its
    /// HTTP_GET's). The host counts requests, not connections, as checks served.
    HttpKeepAlive,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::TcpHalfOpen => "tcp-half-open",
            Kind::Http => "http",
            Kind::HttpKeepAlive => "http-keepalive",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Checker {
    Lbd,
    Keepalived,
}

impl Checker {
    pub fn name(self) -> &'static str {
        match self {
            Checker::Lbd => "lbd",
            Checker::Keepalived => "keepalived",
        }
    }

    /// The port its reals listen on, so the host can tell whose checks it served.
    pub fn port(self, kind: Kind) -> u16 {
        match (self, kind) {
            (Checker::Lbd, Kind::Tcp) => 8001,
            (Checker::Keepalived, Kind::Tcp) => 8002,
            (Checker::Lbd, Kind::TcpHalfOpen) => 8003,
            (Checker::Keepalived, Kind::TcpHalfOpen) => 8004,
            (Checker::Lbd, Kind::Http) => 8101,
            (Checker::Keepalived, Kind::Http) => 8102,
            (Checker::Lbd, Kind::HttpKeepAlive) => 8103,
            (Checker::Keepalived, Kind::HttpKeepAlive) => 8104,
        }
    }

    /// First firewall mark of its services (the two sets never overlap in IPVS).
    pub fn first_fwmark(self) -> usize {
        match self {
            Checker::Lbd => 1,
            Checker::Keepalived => 1001,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub reals: usize,
    pub seconds: u64,
    /// Extra time in the steady state before the window opens.
    pub settle: u64,
    pub kinds: Vec<Kind>,
    pub checkers: Vec<Checker>,
}

/// The options in `args`; an empty error asks for the usage alone (`--help`).
pub fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        reals: 10_000,
        seconds: 30,
        settle: 5,
        kinds: vec![
            Kind::Tcp,
            Kind::TcpHalfOpen,
            Kind::Http,
            Kind::HttpKeepAlive,
        ],
        checkers: vec![Checker::Lbd, Checker::Keepalived],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--reals" => {
                let v = val()?;
                o.reals = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=REALS_MAX).contains(n))
                    .ok_or_else(|| format!("--reals {v}: a number from 1 to {REALS_MAX}"))?;
            }
            "--seconds" => {
                let v = val()?;
                o.seconds = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--seconds {v}: a positive number"))?;
            }
            "--settle" => {
                let v = val()?;
                o.settle = v
                    .parse()
                    .map_err(|_| format!("--settle {v}: a number of seconds"))?;
            }
            "--kind" => {
                o.kinds = match val()?.as_str() {
                    "connect" => vec![Kind::Tcp],
                    "tcp" => vec![Kind::Tcp, Kind::TcpHalfOpen],
                    "half-open" => vec![Kind::TcpHalfOpen],
                    "http" => vec![Kind::Http],
                    "http-keepalive" => vec![Kind::HttpKeepAlive],
                    "http-all" => vec![Kind::Http, Kind::HttpKeepAlive],
                    "both" | "all" => vec![
                        Kind::Tcp,
                        Kind::TcpHalfOpen,
                        Kind::Http,
                        Kind::HttpKeepAlive,
                    ],
                    k => {
                        return Err(format!(
                        "--kind {k}: connect, half-open, tcp (connect and half-open), http, http-keepalive, http-all or all"
                    ))
                    }
                }
            }
            "--checker" => {
                o.checkers = match val()?.as_str() {
                    "lbd" => vec![Checker::Lbd],
                    "keepalived" => vec![Checker::Keepalived],
                    "both" => vec![Checker::Lbd, Checker::Keepalived],
                    c => return Err(format!("--checker {c}: lbd, keepalived or both")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Whether `checker` is measured for `kind` (keepalived has no half-open or keep-alive check).
pub fn runs(checker: Checker, kind: Kind) -> bool {
    checker == Checker::Lbd || !matches!(kind, Kind::TcpHalfOpen | Kind::HttpKeepAlive)
}

/// 250 addresses per /24 in 10.201.0.0/16.
const REALS_MAX: usize = 250 * 256;
