//! MySQL and PostgreSQL checkers against real MariaDB and PostgreSQL servers started inside a
//! test network namespace (packages mariadb-server and postgresql): logins without and with
//! passwords (mysql_native_password, also after an auth switch; PostgreSQL SCRAM-SHA-256, md5
//! and cleartext, each chosen by pg_hba.conf), wrong passwords, plugins the check cannot do;
//! plus scripted peers for the refusals a real server gives only under load ("too many
//! connections", "starting up") and for MySQL 8's caching_sha2_password, which Debian does
//! not ship.

mod check_support;

use check_support::*;
use lbd::check::{Failure, Outcome};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SECOND: Duration = Duration::from_secs(1);
/// How often the waits below run their check.
const POLL: Duration = Duration::from_millis(100);

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (polling every 100 ms, at most 30 s) until `probe` says up (the server accepts
/// logins).
fn wait_up(ns: &Netns, real: &'static str, check: &'static str, what: &str) {
    let ok = ns.run(move || async move {
        let p = probe(real, check);
        let mut last = None;
        let up = lbtest::wait::until_probe(30 * SECOND, POLL, async || match p.run().await {
            Outcome::Up { .. } => true,
            Outcome::Down(f) => {
                last = Some(f);
                false
            }
        })
        .await;
        up.map(drop).ok_or(last)
    });
    if let Err(last) = ok {
        panic!("{what} did not accept the check within 30s; last failure: {last:?}");
    }
}

/// Waits (polling every 100 ms, at most 5 s) until connects to the killed server at `real`
/// are refused.
fn wait_refused(ns: &Netns, real: &'static str, check: &'static str, what: &str) {
    let refused = ns.run(move || async move {
        let p = probe(real, check);
        lbtest::wait::until_probe(5 * SECOND, POLL, async || {
            p.run().await == Outcome::Down(Failure::Refused)
        })
        .await
    });
    assert!(
        refused.is_some(),
        "{what} still answers after it was killed"
    );
}

#[test]
fn postgresql_logins_refusals_and_stop() {
    require(&[
        "/usr/lib/postgresql/15/bin/postgres",
        "/usr/lib/postgresql/15/bin/initdb",
        "setpriv",
    ]);
    let dir = TempDir::new("pg");
    let data = dir.path().join("data");
    let sock = dir.path().join("sock");
    std::fs::create_dir_all(&sock).unwrap();
    run_ok(
        lbtest::programs::command("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path()),
    );
    let as_postgres = |program: &str| {
        let mut c = lbtest::programs::command("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
        c.arg(Path::new(PG_BIN).join(program));
        c
    };
    run_ok(as_postgres("initdb").args(["-D"]).arg(&data).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "--no-sync",
        "--no-instructions",
    ]));
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         host all pwuser 127.0.0.1/32 scram-sha-256\n\
         host all md5user 127.0.0.1/32 md5\n\
         host all clearuser 127.0.0.1/32 password\n\
         host all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    let ns = Netns::new("pg");
    let (data_s, sock_s) = (data.display().to_string(), sock.display().to_string());
    let mut server = ns.spawn(&[
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        &format!("{PG_BIN}/postgres"),
        "-D",
        &data_s,
        "-k",
        &sock_s,
        "-p",
        "5432",
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "password_encryption=scram-sha-256",
    ]);
    wait_up(
        &ns,
        "127.0.0.1:5432",
        r#"type = "pgsql", user = "postgres""#,
        "postgres",
    );
    server.assert_running();
    ns.exec(&[
        &format!("{PG_BIN}/psql"),
        "-h",
        &sock_s,
        "-p",
        "5432",
        "-U",
        "postgres",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "CREATE ROLE pwuser LOGIN PASSWORD 'S3cret pw'",
        "-c",
        "CREATE ROLE clearuser LOGIN PASSWORD 'S3cret pw'",
        // md5 is only asked for when the stored password is an MD5 one.
        "-c",
        "SET password_encryption = 'md5'",
        "-c",
        "CREATE ROLE md5user LOGIN PASSWORD 'S3cret pw'",
    ]);
    // The server stores what each method needs: a SCRAM verifier, an MD5 hash.
    let stored = ns.exec(&[
        &format!("{PG_BIN}/psql"),
        "-h",
        &sock_s,
        "-p",
        "5432",
        "-U",
        "postgres",
        "-Atc",
        "SELECT rolname || ' ' || split_part(rolpassword, '$', 1) FROM pg_authid WHERE rolname IN ('pwuser', 'md5user') ORDER BY 1",
    ]);
    let stored: Vec<&str> = stored.lines().collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored[0].starts_with("md5user md5"), "{stored:?}");
    assert_eq!(stored[1], "pwuser SCRAM-SHA-256", "{stored:?}");
    ns.run(|| async {
        // A full login as a trusted user, into a database.
        assert_eq!(
            probe(
                "127.0.0.1:5432",
                r#"type = "pgsql", user = "postgres", database = "postgres""#
            )
            .run()
            .await,
            Outcome::UP
        );
        // No user: the server answering "no such role" is a server that runs.
        assert_eq!(
            probe("127.0.0.1:5432", r#"type = "pgsql""#).run().await,
            Outcome::UP
        );
        // A named user must get in.
        let f = fails(
            "127.0.0.1:5432",
            r#"type = "pgsql", user = "postgres", database = "nosuchdb""#,
        )
        .await;
        assert_eq!(
            f.to_string(),
            "rejected: PostgreSQL FATAL 3D000: database \"nosuchdb\" does not exist"
        );
        let f = fails("127.0.0.1:5432", r#"type = "pgsql", user = "pwuser""#).await;
        assert_eq!(
            f.to_string(),
            "rejected: PostgreSQL asks for a password for user pwuser (SASL SCRAM-SHA-256); the check has none (set `password`, or trust the user in pg_hba.conf)"
        );
        // Each password method, right and wrong: SCRAM-SHA-256 (the server's signature
        // verified), md5, cleartext. A wrong password is the server's refusal, without the
        // password in the reason.
        for user in ["pwuser", "md5user", "clearuser"] {
            let good = format!(
                r#"type = "pgsql", user = "{user}", password = "S3cret pw", database = "postgres""#
            );
            assert_eq!(probe("127.0.0.1:5432", &good).run().await, Outcome::UP, "{user}");
            let bad = format!(r#"type = "pgsql", user = "{user}", password = "wrong-pw""#);
            let f = fails("127.0.0.1:5432", &bad).await;
            assert_eq!(
                f.to_string(),
                format!(
                    "rejected: PostgreSQL FATAL 28P01: password authentication failed for user \"{user}\""
                )
            );
        }


        // A server still starting (scripted: a real one is only briefly in that state).
        let l = TcpListener::bind("127.0.0.1:5433").await.unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let body = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0";
                let mut m = vec![b'E'];
                m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
                m.extend_from_slice(body);
                let _ = s.write_all(&m).await;
            }
        });
        let f = fails("127.0.0.1:5433", r#"type = "pgsql""#).await;
        assert_eq!(
            f.to_string(),
            "rejected: PostgreSQL FATAL 57P03: the database system is starting up"
        );
    });
    // A check keeps its SCRAM keys between runs (PBKDF2 once per password and salt): later
    // logins still pass, and fail once the password changes on the server (a new salt).
    let scram = probe(
        "127.0.0.1:5432",
        r#"type = "pgsql", user = "pwuser", password = "S3cret pw", database = "postgres""#,
    );
    let p = scram.clone();
    ns.run(move || async move {
        for _ in 0..3 {
            assert_eq!(p.run().await, Outcome::UP);
        }
    });
    ns.exec(&[
        &format!("{PG_BIN}/psql"),
        "-h",
        &sock_s,
        "-p",
        "5432",
        "-U",
        "postgres",
        "-qc",
        "ALTER ROLE pwuser PASSWORD 'changed'",
    ]);
    ns.run(move || async move {
        let f = down(scram.run().await);
        assert!(f.to_string().contains("28P01"), "{f}");
    });
    server.kill().unwrap();
    // setpriv execs postgres, so the guard killed the postmaster itself.
    wait_refused(&ns, "127.0.0.1:5432", r#"type = "pgsql""#, "postgres");
}

#[test]
fn mariadb_logins_refusals_and_stop() {
    require(&["mariadbd", "mariadb-install-db"]);
    let dir = TempDir::new("maria");
    let data = dir.path().join("data");
    let d = dir.path().display().to_string();
    run_ok(
        lbtest::programs::command("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]),
    );
    let init = dir.write(
        "init.sql",
        "CREATE USER IF NOT EXISTS 'lbcheck'@'%';\n\
         CREATE DATABASE IF NOT EXISTS app;\n\
         GRANT ALL ON app.* TO 'lbcheck'@'%';\n\
         CREATE USER IF NOT EXISTS 'pwcheck'@'%' IDENTIFIED BY 'S3cret!pw';\n\
         GRANT ALL ON app.* TO 'pwcheck'@'%';\n\
         CREATE USER IF NOT EXISTS 'switchcheck'@'%' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('S3cret!pw');\n\
         INSTALL SONAME 'auth_ed25519';\n\
         CREATE USER IF NOT EXISTS 'edcheck'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('S3cret!pw');\n",
    );
    let ns = Netns::new("maria");
    let mut server = ns.spawn(&[
        "mariadbd",
        "--no-defaults",
        &format!("--datadir={}", data.display()),
        &format!("--socket={d}/mysql.sock"),
        &format!("--pid-file={d}/mysql.pid"),
        &format!("--init-file={}", init.display()),
        "--port=3306",
        "--bind-address=127.0.0.1",
        "--user=root",
        "--skip-name-resolve",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=16M",
    ]);
    wait_up(
        &ns,
        "127.0.0.1:3306",
        r#"type = "mysql", user = "lbcheck""#,
        "mariadbd",
    );
    server.assert_running();
    ns.run(|| async {
        assert_eq!(
            probe(
                "127.0.0.1:3306",
                r#"type = "mysql", user = "lbcheck", database = "app""#
            )
            .run()
            .await,
            Outcome::UP
        );
        // No user: "access denied" for lbd-check still proves the server runs.
        assert_eq!(
            probe("127.0.0.1:3306", r#"type = "mysql""#).run().await,
            Outcome::UP
        );
        let f = fails("127.0.0.1:3306", r#"type = "mysql", user = "nosuch""#).await;
        assert!(
            f.to_string().starts_with(
                "rejected: MySQL error 1045 (28000): Access denied for user 'nosuch'@'127.0.0.1'"
            ),
            "{f}"
        );
        let f = fails(
            "127.0.0.1:3306",
            r#"type = "mysql", user = "lbcheck", database = "secret""#,
        )
        .await;
        assert!(
            f.to_string().starts_with("rejected: MySQL error 1044"),
            "{f}"
        );

        // Passwords: mysql_native_password, right and wrong (the server's refusal is the reason,
        // and the password is in no reason).
        assert_eq!(
            probe(
                "127.0.0.1:3306",
                r#"type = "mysql", user = "pwcheck", password = "S3cret!pw", database = "app""#
            )
            .run()
            .await,
            Outcome::UP
        );
        let f = fails(
            "127.0.0.1:3306",
            r#"type = "mysql", user = "pwcheck", password = "wrong-pw""#,
        )
        .await;
        assert_eq!(
            f.to_string(),
            "rejected: MySQL error 1045 (28000): Access denied for user 'pwcheck'@'127.0.0.1' (using password: YES)"
        );
        // No password for a user that has one.
        let f = fails("127.0.0.1:3306", r#"type = "mysql", user = "pwcheck""#).await;
        assert!(f.to_string().ends_with("(using password: NO)"), "{f}");
        // unix_socket first: over TCP it fails and MariaDB switches to mysql_native_password
        // with a new nonce (AuthSwitchRequest).
        assert_eq!(
            probe(
                "127.0.0.1:3306",
                r#"type = "mysql", user = "switchcheck", password = "S3cret!pw""#
            )
            .run()
            .await,
            Outcome::UP
        );
        let f = fails(
            "127.0.0.1:3306",
            r#"type = "mysql", user = "switchcheck", password = "wrong-pw""#,
        )
        .await;
        assert!(f.to_string().starts_with("rejected: MySQL error 1045"), "{f}");
        // A plugin the check does not speak: a clear reason, not a hang.
        let f = fails(
            "127.0.0.1:3306",
            r#"type = "mysql", user = "edcheck", password = "S3cret!pw""#,
        )
        .await;
        assert_eq!(
            f.to_string(),
            "rejected: MySQL asks for auth plugin client_ed25519, which the check cannot do (it speaks mysql_native_password and caching_sha2_password)"
        );

        // A server out of connections (scripted: the greeting is an ERR packet).
        let l = TcpListener::bind("127.0.0.1:3307").await.unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut payload = vec![0xff];
                payload.extend_from_slice(&1040u16.to_le_bytes());
                payload.extend_from_slice(b"Too many connections");
                let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
                p.push(0);
                p.extend_from_slice(&payload);
                let _ = s.write_all(&p).await;
            }
        });
        let f = fails("127.0.0.1:3307", r#"type = "mysql""#).await;
        assert_eq!(
            f.to_string(),
            "rejected: MySQL error 1040: Too many connections"
        );
        // Accepts, never greets.
        let _silent = TcpListener::bind("127.0.0.1:3308").await.unwrap();
        let f = fails("127.0.0.1:3308", r#"type = "mysql", timeout = "300ms""#).await;
        assert_eq!(
            f.to_string(),
            "timeout after 300ms (waiting for the server greeting)"
        );
    });
    server.kill().unwrap();
    wait_refused(&ns, "127.0.0.1:3306", r#"type = "mysql""#, "mariadbd");
}

/// MySQL 8's caching_sha2_password, which Debian's MariaDB does not have: a scripted MySQL 8
/// peer that verifies the fast-path scramble the way the server does (it holds only
/// SHA256(SHA256(password)), as its cache does), and demands full authentication for a user
/// it has not cached. That demand needs TLS or an RSA key exchange: the check must say so at
/// once rather than wait for its timeout.
#[test]
fn mysql8_caching_sha2_fast_path_and_full_auth() {
    use ring::digest::{digest, SHA256};
    require(&[]);
    let ns = Netns::new("sha2");
    ns.run(|| async {
        let l = TcpListener::bind("127.0.0.1:3310").await.unwrap();
        let stored = digest(&SHA256, digest(&SHA256, b"S3cret!pw").as_ref());
        let stored = stored.as_ref().to_vec();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let stored = stored.clone();
                tokio::spawn(async move {
                    let nonce = *b"0123456789abcdefghij";
                    let mut g = vec![10];
                    g.extend_from_slice(b"8.0.36\0");
                    g.extend_from_slice(&9u32.to_le_bytes());
                    g.extend_from_slice(&nonce[..8]);
                    g.push(0);
                    g.extend_from_slice(&0xffffu16.to_le_bytes());
                    g.push(255);
                    g.extend_from_slice(&2u16.to_le_bytes());
                    g.extend_from_slice(&0xdfffu16.to_le_bytes()); // PLUGIN_AUTH and more
                    g.push(21);
                    g.extend_from_slice(&[0; 10]);
                    g.extend_from_slice(&nonce[8..]);
                    g.push(0);
                    g.extend_from_slice(b"caching_sha2_password\0");
                    let send = |seq: u8, payload: &[u8]| {
                        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
                        p.push(seq);
                        p.extend_from_slice(payload);
                        p
                    };
                    let _ = s.write_all(&send(0, &g)).await;
                    let mut buf = vec![0u8; 1024];
                    let Ok(n) = s.read(&mut buf).await else { return };
                    let r = &buf[4..n];
                    let user_end = 32 + r[32..].iter().position(|&b| b == 0).unwrap();
                    let user = String::from_utf8_lossy(&r[32..user_end]).into_owned();
                    let len = r[user_end + 1] as usize;
                    let auth = &r[user_end + 2..user_end + 2 + len];
                    let plugin_named = r[user_end + 2 + len..].starts_with(b"caching_sha2_password\0");
                    // Server side of the fast path: SHA256(password) = auth XOR
                    // SHA256(stored + nonce), and its hash must be what is stored.
                    let mask = digest(&SHA256, &[&stored[..], &nonce[..]].concat());
                    let stage1: Vec<u8> = auth.iter().zip(mask.as_ref()).map(|(a, b)| a ^ b).collect();
                    let ok = plugin_named && len == 32 && digest(&SHA256, &stage1).as_ref() == stored;
                    match (user.as_str(), ok) {
                        ("cached", true) => {
                            let _ = s.write_all(&send(2, &[1, 3])).await;
                            let _ = s.write_all(&send(3, &[0, 0, 0, 2, 0, 0, 0])).await;
                        }
                        ("uncached", _) => {
                            // Perform full authentication; a real client now asks for the
                            // RSA key (or sends the password over TLS).
                            let _ = s.write_all(&send(2, &[1, 4])).await;
                        }
                        _ => {
                            let mut e = vec![0xff];
                            e.extend_from_slice(&1045u16.to_le_bytes());
                            e.extend_from_slice(b"#28000Access denied for user");
                            let _ = s.write_all(&send(2, &e)).await;
                        }
                    }
                    // Hold the connection open: a check waiting for more would time out.
                    let _ = s.read(&mut buf).await;
                });
            }
        });
        assert_eq!(
            probe(
                "127.0.0.1:3310",
                r#"type = "mysql", user = "cached", password = "S3cret!pw""#
            )
            .run()
            .await,
            Outcome::UP
        );
        let f = fails(
            "127.0.0.1:3310",
            r#"type = "mysql", user = "cached", password = "wrong""#,
        )
        .await;
        assert_eq!(
            f.to_string(),
            "rejected: MySQL error 1045 (28000): Access denied for user"
        );
        let f = fails(
            "127.0.0.1:3310",
            r#"type = "mysql", user = "uncached", password = "S3cret!pw", timeout = "30s""#,
        )
        .await;
        assert!(
            matches!(&f, Failure::Rejected(m) if m.contains("caching_sha2_password wants full authentication for user uncached") && m.contains("RSA key exchange")),
            "{f}"
        );
    });
}

/// Handshake-only checks (no `user`: nothing secret in the config) are down when nothing
/// listens and when something that is not the database answers.
#[test]
fn handshake_only_checks_are_down_on_a_stopped_or_garbage_server() {
    require(&[]);
    let ns = Netns::new("sql-garbage");
    ns.run(|| async {
        // Nothing listens.
        for check in [r#"type = "mysql""#, r#"type = "pgsql""#] {
            let f = fails("127.0.0.1:3399", check).await;
            assert!(f.to_string().contains("refused"), "{check}: {f}");
        }
        // A server that answers with an HTTP response instead of a greeting.
        let l = TcpListener::bind("127.0.0.1:3398").await.unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                });
            }
        });
        let f = fails("127.0.0.1:3398", r#"type = "mysql""#).await;
        assert!(f.to_string().contains("not a MySQL server"), "{f}");
        let f = fails("127.0.0.1:3398", r#"type = "pgsql""#).await;
        assert!(f.to_string().contains("bad PostgreSQL message"), "{f}");
    });
}
