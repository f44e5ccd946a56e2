//! MySQL and PostgreSQL checkers against real MariaDB and PostgreSQL servers started inside a
//! test network namespace (packages mariadb-server and postgresql), plus scripted peers for the
//! refusals a real server gives only under load ("too many connections", "starting up").

mod check_support;

use check_support::*;
use lbd::check::{Failure, Outcome};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn down(o: Outcome) -> Failure {
    match o {
        Outcome::Down(f) => f,
        up => panic!("expected a failure, got {up:?}"),
    }
}

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

/// Waits until `probe` says up (the server accepts logins), bounded.
fn wait_up(ns: &Netns, real: &'static str, check: &'static str, what: &str) {
    let ok = ns.run(move || async move {
        let p = probe(real, check);
        let mut last = None;
        for _ in 0..300 {
            match p.run().await {
                Outcome::Up { .. } => return Ok(()),
                Outcome::Down(f) => last = Some(f),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last)
    });
    if let Err(last) = ok {
        panic!("{what} did not accept the check within 30s; last failure: {last:?}");
    }
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
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path()),
    );
    let as_postgres = |program: &str| {
        let mut c = Command::new("setpriv");
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
        "-qc",
        "CREATE ROLE pwuser LOGIN PASSWORD 'secret'",
    ]);
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
        let f = down(
            probe(
                "127.0.0.1:5432",
                r#"type = "pgsql", user = "postgres", database = "nosuchdb""#,
            )
            .run()
            .await,
        );
        assert_eq!(
            f.to_string(),
            "rejected: PostgreSQL FATAL 3D000: database \"nosuchdb\" does not exist"
        );
        let f = down(
            probe("127.0.0.1:5432", r#"type = "pgsql", user = "pwuser""#)
                .run()
                .await,
        );
        assert!(
            f.to_string()
                .contains("asks for a password for user pwuser (method 10)"),
            "{f}"
        );

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
        let f = down(probe("127.0.0.1:5433", r#"type = "pgsql""#).run().await);
        assert_eq!(
            f.to_string(),
            "rejected: PostgreSQL FATAL 57P03: the database system is starting up"
        );
    });
    server.kill();
    // setpriv execs postgres, so the guard killed the postmaster itself.
    ns.run(|| async {
        let p = probe("127.0.0.1:5432", r#"type = "pgsql""#);
        for _ in 0..50 {
            if p.run().await == Outcome::Down(Failure::Refused) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("postgres still answers after it was killed");
    });
}

#[test]
fn mariadb_logins_refusals_and_stop() {
    require(&["mariadbd", "mariadb-install-db"]);
    let dir = TempDir::new("maria");
    let data = dir.path().join("data");
    let d = dir.path().display().to_string();
    run_ok(
        Command::new("mariadb-install-db")
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
         GRANT ALL ON app.* TO 'lbcheck'@'%';\n",
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
        let f = down(
            probe("127.0.0.1:3306", r#"type = "mysql", user = "nosuch""#)
                .run()
                .await,
        );
        assert!(
            f.to_string().starts_with(
                "rejected: MySQL error 1045 (28000): Access denied for user 'nosuch'@'127.0.0.1'"
            ),
            "{f}"
        );
        let f = down(
            probe(
                "127.0.0.1:3306",
                r#"type = "mysql", user = "lbcheck", database = "secret""#,
            )
            .run()
            .await,
        );
        assert!(
            f.to_string().starts_with("rejected: MySQL error 1044"),
            "{f}"
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
        let f = down(probe("127.0.0.1:3307", r#"type = "mysql""#).run().await);
        assert_eq!(
            f.to_string(),
            "rejected: MySQL error 1040: Too many connections"
        );
        // Accepts, never greets.
        let _silent = TcpListener::bind("127.0.0.1:3308").await.unwrap();
        let f = down(
            probe("127.0.0.1:3308", r#"type = "mysql", timeout = "300ms""#)
                .run()
                .await,
        );
        assert_eq!(
            f.to_string(),
            "timeout after 300ms (waiting for the server greeting)"
        );
    });
    server.kill();
    ns.run(|| async {
        let p = probe("127.0.0.1:3306", r#"type = "mysql""#);
        for _ in 0..50 {
            if p.run().await == Outcome::Down(Failure::Refused) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mariadbd still answers after it was killed");
    });
}
