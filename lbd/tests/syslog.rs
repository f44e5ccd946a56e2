//! Remote syslog from the real lbd binary to socat collectors in network namespaces.
//!
//! Every received message is parsed here, independently of lbd's formatter, against the
//! RFC 5424 grammar field by field (PRI, VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID,
//! STRUCTURED-DATA with escapes, MSG); UDP datagrams carry one message each, TCP uses RFC 6587
//! octet counting. Needs root and socat (tools/setup.sh). The namespaces, collectors and lbd
//! are removed by Drop guards, also when a test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lbtest::wait;

/// How often a listener or the collectors' files are checked while waiting.
const POLL: Duration = Duration::from_millis(20);

static SEQ: AtomicU32 = AtomicU32::new(0);

fn require() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root (network namespaces); run it as root"
    );
    lbtest::programs::path("socat");
}

fn run(args: &[&str]) {
    let out = Command::new(lbtest::programs::resolve_arg0(args[0].as_ref()))
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair: `lb` (10.88.0.1) runs lbd, `log` (10.88.0.2) the
/// collectors. Deleted, with every process inside, on drop.
struct Lab {
    lb: String,
    log: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Lab {
        require();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("sl{}x{n}", std::process::id());
        let lab = Lab {
            lb: format!("{tag}lb"),
            log: format!("{tag}log"),
            dir: std::env::temp_dir().join(format!("lbd-syslog-{tag}")),
            children: Vec::new(),
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(lab.dir.join("udp")).unwrap();
        for ns in [&lab.lb, &lab.log] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "link", "add", "eth0", "netns", &lab.lb, "type", "veth", "peer", "name", "eth0",
            "netns", &lab.log,
        ]);
        for (ns, addr) in [(&lab.lb, "10.88.0.1/24"), (&lab.log, "10.88.0.2/24")] {
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"]);
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    fn spawn(&mut self, ns: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> u32 {
        let mut c = lbtest::programs::command("ip");
        c.args(["netns", "exec", ns]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// socat writing each datagram to its own file (`udp/m.PID` of the child it forks).
    fn udp_collector(&mut self, port: u16) {
        let dir = self.dir.join("udp");
        let log = self.dir.join(format!("socat-udp-{port}.log"));
        let ns = self.log.clone();
        self.spawn(
            &ns,
            &[
                "socat",
                "-u",
                &format!("UDP-RECVFROM:{port},bind=10.88.0.2,fork"),
                &format!("SYSTEM:cat > {}/m.$$", dir.display()),
            ],
            &[],
            &log,
        );
        wait::expect(
            "the UDP collector listening",
            Duration::from_secs(5),
            POLL,
            || listening(&self.log, port, "udp"),
        );
    }

    /// socat appending one TCP connection's bytes to `tcp.bytes`.
    fn tcp_collector(&mut self, port: u16) {
        let out = self.dir.join("tcp.bytes");
        let log = self.dir.join("socat-tcp.log");
        let ns = self.log.clone();
        self.spawn(
            &ns,
            &[
                "socat",
                "-u",
                &format!("TCP-LISTEN:{port},bind=10.88.0.2,reuseaddr,fork"),
                &format!("OPEN:{},creat,append", out.display()),
            ],
            &[],
            &log,
        );
        wait::expect(
            "the TCP collector listening",
            Duration::from_secs(5),
            POLL,
            || listening(&self.log, port, "tcp"),
        );
    }

    fn lbd(&mut self, config: &str, env: &[(&str, &str)]) -> u32 {
        let conf = self.dir.join("lbd.toml");
        std::fs::write(&conf, config).unwrap();
        let log = self.dir.join("lbd.log");
        let ns = self.lb.clone();
        let sock = self.dir.join("lbd.sock").display().to_string();
        let mut all = vec![("LBD_API_SOCKET", sock.as_str())];
        all.extend_from_slice(env);
        self.spawn(
            &ns,
            &[env!("CARGO_BIN_EXE_lbd"), "-c", conf.to_str().unwrap()],
            &all,
            &log,
        )
    }

    fn lbd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("lbd.log")).unwrap_or_default()
    }

    fn udp_messages(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("udp"))
            .unwrap()
            .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
            .filter(|b| !b.is_empty())
            .map(|b| String::from_utf8(b).expect("a datagram is UTF-8"))
            .collect();
        v.sort_by_key(|m| parse(m).map(|p| p.uptime_micros()).unwrap_or(0));
        v
    }

    fn tcp_bytes(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("tcp.bytes")).unwrap_or_default()
    }

    fn signal(&self, pid: u32, sig: &str) {
        // `ip netns exec` replaces itself with lbd, so the child's pid is lbd's.
        run(&["kill", "-s", sig, &pid.to_string()]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.lb, &self.log] {
            let _ = lbtest::programs::command("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| {
                    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = lbtest::programs::command("kill").args(["-9", pid]).status();
                    }
                });
            let _ = lbtest::programs::command("ip")
                .args(["netns", "del", ns])
                .status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn listening(ns: &str, port: u16, proto: &str) -> bool {
    let flag = if proto == "udp" { "-uln" } else { "-tln" };
    lbtest::programs::command("ip")
        .args(["netns", "exec", ns, "ss", flag])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(":{port} ")))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// An RFC 5424 parser written from the RFC's ABNF, independent of lbd's formatter.

#[derive(Debug)]
struct Syslog {
    facility: u8,
    severity: u8,
    version: u32,
    timestamp: SystemTime,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    sd: SdElements,
    msg: String,
}

impl Syslog {
    fn param(&self, id: &str, name: &str) -> Option<&str> {
        self.sd
            .iter()
            .find(|(i, _)| i == id)?
            .1
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn uptime_micros(&self) -> u64 {
        self.param("lb@32473", "uptime")
            .and_then(|u| u.parse::<f64>().ok())
            .map_or(0, |f| (f * 1e6) as u64)
    }
}

fn printusascii(c: char) -> bool {
    ('\u{21}'..='\u{7e}').contains(&c)
}

/// HEADER field: NILVALUE or 1*max PRINTUSASCII.
fn field<'a>(rest: &mut &'a str, what: &str, max: usize) -> Result<&'a str, String> {
    let end = rest.find(' ').ok_or(format!("{what}: no SP after it"))?;
    let f = &rest[..end];
    if f.is_empty() || f.len() > max || !f.chars().all(printusascii) {
        return Err(format!(
            "{what} {f:?}: 1 to {max} printable US-ASCII characters"
        ));
    }
    *rest = &rest[end + 1..];
    Ok(f)
}

fn digits(s: &str, n: usize, lo: u32, hi: u32, what: &str) -> Result<u32, String> {
    if s.len() != n || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{what} {s:?}: {n} digits"));
    }
    let v: u32 = s.parse().unwrap();
    if !(lo..=hi).contains(&v) {
        return Err(format!("{what} {v} out of {lo}..{hi}"));
    }
    Ok(v)
}

/// FULL-DATE "T" FULL-TIME with TIME-SECFRAC 1*6DIGIT and TIME-OFFSET "Z" or ±hh:mm.
fn timestamp(t: &str) -> Result<SystemTime, String> {
    let (date, time) = t.split_once('T').ok_or("TIMESTAMP: no 'T'")?;
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 {
        return Err(format!("FULL-DATE {date:?}"));
    }
    let year = digits(d[0], 4, 0, 9999, "DATE-FULLYEAR")? as i64;
    let month = digits(d[1], 2, 1, 12, "DATE-MONTH")?;
    let day = digits(d[2], 2, 1, 31, "DATE-MDAY")?;
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0i64)
    } else {
        let i = time.rfind(['+', '-']).ok_or("TIME-OFFSET missing")?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').ok_or("TIME-NUMOFFSET")?;
        let h = digits(h, 2, 0, 23, "offset hours")? as i64;
        let m = digits(m, 2, 0, 59, "offset minutes")? as i64;
        (c, sign * (h * 3600 + m * 60))
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let p: Vec<&str> = hms.split(':').collect();
    if p.len() != 3 {
        return Err(format!("PARTIAL-TIME {hms:?}"));
    }
    let hh = digits(p[0], 2, 0, 23, "TIME-HOUR")? as i64;
    let mm = digits(p[1], 2, 0, 59, "TIME-MINUTE")? as i64;
    let ss = digits(p[2], 2, 0, 59, "TIME-SECOND")? as i64;
    let micros = match frac {
        None => 0,
        Some(f) => {
            if f.is_empty() || f.len() > 6 || !f.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("TIME-SECFRAC {f:?}: 1 to 6 digits"));
            }
            f.parse::<u64>().unwrap() * 10u64.pow(6 - f.len() as u32)
        }
    };
    // Days from civil (proleptic Gregorian).
    let (y, m) = if month <= 2 {
        (year - 1, month + 12)
    } else {
        (year, month)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m as i64 - 3) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss - offset_secs;
    Ok(UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_micros(micros))
}

/// SD-ELEMENTs: `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]`..., or NILVALUE.
/// SD-ID → params, in order.
type SdElements = Vec<(String, Vec<(String, String)>)>;

fn structured_data(rest: &mut &str) -> Result<SdElements, String> {
    if let Some(r) = rest.strip_prefix('-') {
        *rest = r;
        return Ok(Vec::new());
    }
    let sd_name = |s: &str, what: &str| -> Result<(), String> {
        if s.is_empty()
            || s.len() > 32
            || !s
                .chars()
                .all(|c| printusascii(c) && !matches!(c, '=' | ']' | '"' | ' '))
        {
            return Err(format!("{what} {s:?} is not an SD-NAME"));
        }
        Ok(())
    };
    let mut out = Vec::new();
    while let Some(r) = rest.strip_prefix('[') {
        let end = r.find([' ', ']']).ok_or("SD-ELEMENT not closed")?;
        let id = &r[..end];
        sd_name(id.split('@').next().unwrap_or(""), "SD-ID")?;
        if let Some((_, pen)) = id.split_once('@') {
            if pen.is_empty() || !pen.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return Err(format!("SD-ID {id:?}: bad enterprise number"));
            }
        }
        let mut r = &r[end..];
        let mut params = Vec::new();
        loop {
            if let Some(after) = r.strip_prefix(']') {
                r = after;
                break;
            }
            r = r
                .strip_prefix(' ')
                .ok_or("expected SP or ']' in SD-ELEMENT")?;
            let eq = r.find('=').ok_or("PARAM without '='")?;
            let name = &r[..eq];
            sd_name(name, "PARAM-NAME")?;
            r = r[eq + 1..]
                .strip_prefix('"')
                .ok_or("PARAM-VALUE must be quoted")?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err("PARAM-VALUE not closed".into()),
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c @ ('"' | '\\' | ']'))) => value.push(c),
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c)
                        }
                        None => return Err("dangling '\\'".into()),
                    },
                    Some((_, ']')) => return Err("unescaped ']' in PARAM-VALUE".into()),
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                }
            };
            r = &r[close + 1..];
            params.push((name.to_string(), value));
        }
        out.push((id.to_string(), params));
        *rest = r;
    }
    if out.is_empty() {
        return Err("STRUCTURED-DATA: neither '-' nor '['".into());
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Syslog, String> {
    let r = text.strip_prefix('<').ok_or("PRI: no '<'")?;
    let close = r.find('>').ok_or("PRI: no '>'")?;
    let pri_text = &r[..close];
    if pri_text.is_empty()
        || pri_text.len() > 3
        || !pri_text.chars().all(|c| c.is_ascii_digit())
        || (pri_text.len() > 1 && pri_text.starts_with('0'))
    {
        return Err(format!("PRIVAL {pri_text:?}"));
    }
    let pri: u32 = pri_text.parse().unwrap();
    if pri > 191 {
        return Err(format!("PRIVAL {pri} > 191"));
    }
    let mut rest = &r[close + 1..];
    let sp = rest.find(' ').ok_or("VERSION: no SP")?;
    let version: u32 = rest[..sp].parse().map_err(|_| "VERSION not a number")?;
    if version == 0 || rest[..sp].starts_with('0') {
        return Err("VERSION: NONZERO-DIGIT 0*2DIGIT".into());
    }
    rest = &rest[sp + 1..];
    let ts = field(&mut rest, "TIMESTAMP", 64)?;
    let timestamp = timestamp(ts)?;
    let hostname = field(&mut rest, "HOSTNAME", 255)?.to_string();
    let app_name = field(&mut rest, "APP-NAME", 48)?.to_string();
    let procid = field(&mut rest, "PROCID", 128)?.to_string();
    let msgid = field(&mut rest, "MSGID", 32)?.to_string();
    let sd = structured_data(&mut rest)?;
    let msg = match rest {
        "" => String::new(),
        r => r
            .strip_prefix(' ')
            .ok_or("MSG must follow STRUCTURED-DATA after SP")?
            .trim_start_matches('\u{feff}')
            .to_string(),
    };
    Ok(Syslog {
        facility: (pri / 8) as u8,
        severity: (pri % 8) as u8,
        version,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd,
        msg,
    })
}

/// RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`, MSG-LEN = NONZERO-DIGIT *DIGIT.
fn octet_frames(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("MSG-LEN: no SP")?;
        let len_text = std::str::from_utf8(&rest[..sp]).map_err(|e| e.to_string())?;
        if len_text.is_empty()
            || len_text.starts_with('0')
            || !len_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!("MSG-LEN {len_text:?}"));
        }
        let len: usize = len_text.parse().unwrap();
        let body = rest
            .get(sp + 1..sp + 1 + len)
            .ok_or(format!("frame of {len} bytes cut short"))?;
        out.push(String::from_utf8(body.to_vec()).map_err(|e| e.to_string())?);
        rest = &rest[sp + 1 + len..];
    }
    Ok(out)
}

/// Checks every message against what lbd (pid `pid`) must send.
fn check_all(messages: &[String], pid: u32) -> Vec<Syslog> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let now = SystemTime::now();
    let mut parsed = Vec::new();
    for m in messages {
        let s = parse(m).unwrap_or_else(|e| panic!("not RFC 5424: {e}\n{m}"));
        assert_eq!(s.version, 1, "{m}");
        assert_eq!(s.facility, 3, "facility daemon: {m}");
        let level = s.param("lb@32473", "level").expect("level param");
        let want = match level {
            "ERROR" => 3,
            "WARN" => 4,
            "INFO" => 6,
            "DEBUG" | "TRACE" => 7,
            other => panic!("level {other:?}: {m}"),
        };
        assert_eq!(s.severity, want, "severity of a {level} event: {m}");
        let age = now.duration_since(s.timestamp).unwrap_or_default();
        assert!(
            age < Duration::from_secs(300) && s.timestamp <= now + Duration::from_secs(5),
            "timestamp is not now: {m}"
        );
        assert_eq!(s.hostname, if host.is_empty() { "-" } else { &host });
        assert_eq!(s.app_name, "lbd");
        assert_eq!(s.procid, pid.to_string());
        assert_eq!(s.msgid, "-");
        assert!(
            s.param("lb@32473", "uptime")
                .and_then(|u| u.parse::<f64>().ok())
                .is_some(),
            "uptime param: {m}"
        );
        assert!(s.param("lb@32473", "target").is_some(), "{m}");
        assert!(!s.msg.is_empty(), "{m}");
        parsed.push(s);
    }
    parsed
}

fn find<'a>(msgs: &'a [Syslog], needle: &str) -> &'a Syslog {
    msgs.iter()
        .find(|m| m.msg.contains(needle))
        .unwrap_or_else(|| {
            let all: Vec<&str> = msgs.iter().map(|m| m.msg.as_str()).collect();
            panic!("no message with {needle:?} among:\n{}", all.join("\n"))
        })
}

const CONFIG: &str = r#"
[node.syslog]
server = "10.88.0.2:5514"

[vrrp.instance.VI]
interface = "eth0"
vrid = 7
priority = 100
advert_interval = "100ms"
vips = ["10.88.0.100/24"]
# A warning at load time, before the syslog target is applied: it must still be sent.
unicast_source = "10.88.0.1"

[service.web]
vip = "10.88.0.100:80"
forwarding = "nat"
check = { type = "tcp", interval = "200ms", timeout = "100ms", fall = 1, rise = 1 }

[[service.web.real]]
address = "10.88.0.2:8080"
"#;

#[test]
fn udp_from_config_every_message_is_rfc5424() {
    let mut lab = Lab::new();
    lab.udp_collector(5514);
    let pid = lab.lbd(CONFIG, &[]);
    wait::expect(
        "the master transition over UDP",
        Duration::from_secs(15),
        POLL,
        || {
            lab.udp_messages()
                .iter()
                .any(|m| m.contains("BACKUP -> MASTER"))
        },
    );
    lab.signal(pid, "TERM");
    wait::expect(
        "lbd stopped, over UDP",
        Duration::from_secs(10),
        POLL,
        || lab.udp_messages().iter().any(|m| m.contains("lbd stopped")),
    );
    // Every line lbd printed reaches the collector (socat's children may still be writing).
    let console = lab.lbd_log();
    let printed = console.lines().filter(|l| l.contains(" lbd: ")).count();
    wait::until(Duration::from_secs(5), Duration::from_millis(50), || {
        lab.udp_messages().len() >= printed
    });
    let raw = lab.udp_messages();
    let msgs = check_all(&raw, pid);
    assert_eq!(
        msgs.len(),
        printed,
        "console:\n{console}\nreceived:\n{}",
        raw.join("\n")
    );
    // The warning logged while loading, before the target was known.
    let w = find(&msgs, "unicast_source has no effect without unicast_peers");
    assert_eq!(w.severity, 4);
    // An error (the host has no IPVS), fields as structured data.
    assert_eq!(find(&msgs, "IPVS is not available").severity, 3);
    let down = find(&msgs, "real 10.88.0.2:8080 of service web is down");
    assert_eq!(down.param("lb@32473", "service"), Some("web"));
    assert_eq!(down.param("lb@32473", "real"), Some("10.88.0.2:8080"));
    assert_eq!(find(&msgs, "lbd running with").severity, 6);
    // Shutdown lines are flushed before lbd exits.
    find(&msgs, "SIGTERM: stopping");
    let last = msgs.last().unwrap();
    assert!(last.msg.contains("lbd stopped"), "last: {}", last.msg);
}

/// The boot-time target (what init reads from `lb.syslog=`, here through `LB_SYSLOG`) over TCP,
/// with the collector started only after lbd: lines wait in the backlog and arrive in order,
/// framed by octet counting. A reload to `[node.syslog]` over UDP moves the stream.
#[test]
fn tcp_octet_counting_from_boot_target_and_reload_to_udp() {
    let mut lab = Lab::new();
    let config = CONFIG.replace("[node.syslog]\nserver = \"10.88.0.2:5514\"\n", "");
    let pid = lab.lbd(&config, &[("LB_SYSLOG", "tcp://10.88.0.2:5515")]);
    wait::expect("lbd running", Duration::from_secs(10), POLL, || {
        lab.lbd_log().contains("lbd running with")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(lab.tcp_bytes().is_empty());
    lab.tcp_collector(5515);
    wait::expect(
        "the master transition over TCP",
        Duration::from_secs(10),
        POLL,
        || String::from_utf8_lossy(&lab.tcp_bytes()).contains("BACKUP -> MASTER"),
    );
    let frames = octet_frames(&lab.tcp_bytes()).unwrap_or_else(|e| panic!("framing: {e}"));
    let msgs = check_all(&frames, pid);
    // Held back while the collector was down, then sent in order from the first line on.
    let first_printed = lab
        .lbd_log()
        .lines()
        .next()
        .and_then(|l| l.split_once(" lbd: "))
        .map(|(_, rest)| {
            let rest = rest.trim_start();
            rest.split_once(' ')
                .map_or(rest, |x| x.1)
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    assert!(
        first_printed.starts_with(&msgs[0].msg),
        "first sent: {:?}, first printed: {first_printed:?}",
        msgs[0].msg
    );
    find(&msgs, "unicast_source has no effect");
    let ups: Vec<u64> = msgs.iter().map(|m| m.uptime_micros()).collect();
    assert!(
        ups.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {ups:?}"
    );
    find(&msgs, "lbd running with");

    // Reload: the config names a UDP collector now.
    lab.udp_collector(5514);
    std::fs::write(lab.dir.join("lbd.toml"), CONFIG).unwrap();
    lab.signal(pid, "HUP");
    wait::expect("the reload over UDP", Duration::from_secs(10), POLL, || {
        lab.udp_messages()
            .iter()
            .any(|m| m.contains("reloaded config"))
    });
    let tcp_after = octet_frames(&lab.tcp_bytes()).unwrap();
    let tcp_msgs = check_all(&tcp_after, pid);
    find(&tcp_msgs, "remote syslog to udp://10.88.0.2:5514");
    lab.signal(pid, "TERM");
    wait::expect(
        "lbd stopped, over UDP",
        Duration::from_secs(10),
        POLL,
        || lab.udp_messages().iter().any(|m| m.contains("lbd stopped")),
    );
    let udp = check_all(&lab.udp_messages(), pid);
    find(&udp, "reloaded config");
    // Nothing after the switch went to TCP.
    let again = octet_frames(&lab.tcp_bytes()).unwrap();
    assert!(
        again.iter().all(|m| !m.contains("lbd stopped")),
        "TCP still got messages after the switch"
    );
    let mut by_level: BTreeMap<u8, usize> = BTreeMap::new();
    for m in tcp_msgs.iter().chain(&udp) {
        *by_level.entry(m.severity).or_default() += 1;
    }
    eprintln!(
        "received {} TCP and {} UDP messages, by severity {by_level:?}",
        tcp_msgs.len(),
        udp.len()
    );
}

#[test]
fn parser_rejects_what_rfc5424_forbids() {
    // The test's own parser must be able to fail.
    for bad in [
        "30>1 2025-01-01T00:00:00Z h a 1 - - x",
        "<192>1 2025-01-01T00:00:00Z h a 1 - - x",
        "<030>1 2025-01-01T00:00:00Z h a 1 - - x",
        "<30>0 2025-01-01T00:00:00Z h a 1 - - x",
        "<30>1 2025-13-01T00:00:00Z h a 1 - - x",
        "<30>1 2025-01-01T00:00:00.1234567Z h a 1 - - x",
        "<30>1 2025-01-01T00:00:00 h a 1 - - x",
        "<30>1 2025-01-01T00:00:00Z h a 1 - [id x=y] x",
        "<30>1 2025-01-01T00:00:00Z h a 1 - [id x=\"a]b\"] x",
        "<30>1 2025-01-01T00:00:00Z h a 1 - [i d] x",
        "<30>1 2025-01-01T00:00:00Z h a 1 - x",
        "<30>1 2025-01-01T00:00:00Z h a 1 -[id] x",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
    let ok = parse(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
         [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]\
         [examplePriority@32473 class=\"high\"] An application event",
    )
    .unwrap();
    assert_eq!((ok.facility, ok.severity), (20, 5));
    assert_eq!(ok.sd.len(), 2);
    assert_eq!(ok.param("exampleSDID@32473", "eventID"), Some("1011"));
    assert_eq!(ok.msg, "An application event");
    assert_eq!(
        ok.timestamp,
        UNIX_EPOCH + Duration::from_millis(1_065_910_455_003)
    );
    assert_eq!(
        octet_frames(b"3 abc2 de").unwrap(),
        vec!["abc".to_string(), "de".to_string()]
    );
    assert!(octet_frames(b"5 abc").is_err());
    assert!(octet_frames(b"03 abc").is_err());
}
