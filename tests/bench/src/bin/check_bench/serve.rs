//! `--serve KIND FIRST END P`: the server process. Listeners for reals FIRST..END; TCP
//! accepts and closes, HTTP answers 200. Reads requests on stdin: `stats` (checks served so
//! far), `kill I` (closes real I's listener, answers the monotonic time in ns when closing
//! began).

use crate::addr;
use crate::proc::monotonic_ns;
use lb_bench::{http_request, tcp_segment};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub fn serve(args: &[String]) -> ExitCode {
    crate::raise_nofile();
    let kind = args.first().cloned().unwrap_or_default();
    let first: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let end: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    let ports: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("server: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve_reals(&kind, first, end, ports))
}

async fn serve_reals(kind: &str, first: usize, end: usize, ports: usize) -> ExitCode {
    let accepted = Arc::new(AtomicU64::new(0));
    if kind == "half-open" {
        // Nothing is accepted: count the SYNs that arrive instead.
        if let Err(e) = count_syns(accepted.clone()) {
            eprintln!("server: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut handles = Vec::with_capacity(end.saturating_sub(first));
    for i in first..end {
        let l = match TcpListener::bind(addr(i, ports)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("server: bind {}: {e}", addr(i, ports));
                return ExitCode::FAILURE;
            }
        };
        handles.push(tokio::spawn(listen(l, kind.to_string(), accepted.clone())));
    }
    println!("ready");
    answer_requests(first, end, handles, &accepted).await;
    ExitCode::SUCCESS
}

/// One real: accepts, and answers as `kind` says; counts the checks served in `accepted`.
async fn listen(l: TcpListener, kind: String, accepted: Arc<AtomicU64>) {
    let http = kind == "http";
    let kept = kind == "http-keepalive";
    // A kept connection dies with its listener (this task): a killed server closes every
    // connection, as a stopped process would.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((s, _)) = l.accept().await else {
            continue;
        };
        if kept {
            connections.spawn(serve_kept(s, accepted.clone()));
            while connections.try_join_next().is_some() {}
            continue;
        }
        accepted.fetch_add(1, Ordering::Relaxed);
        if http {
            tokio::spawn(answer_http(s));
        }
    }
}

/// Answers HTTP/1.1 requests on one kept connection until the client closes it; each counts
/// as a check served.
async fn serve_kept(mut s: TcpStream, accepted: Arc<AtomicU64>) {
    let mut buf = [0u8; 1024];
    let mut got = 0;
    loop {
        match s.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return,
            Ok(k) => got += k,
        }
        while http_request::take_head(&mut buf, &mut got) {
            accepted.fetch_add(1, Ordering::Relaxed);
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                .await
                .is_err()
            {
                return;
            }
        }
        if got == buf.len() {
            return;
        }
    }
}

/// Reads a request head and answers 200 with a short body.
async fn answer_http(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return,
            Ok(k) => got += k,
        }
        if http_request::has_head(&buf[..got]) {
            break;
        }
    }
    let _ = s
        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        .await;
}

/// Answers the benchmark's requests on stdin until it closes it.
async fn answer_requests(
    first: usize,
    end: usize,
    mut handles: Vec<JoinHandle<()>>,
    accepted: &AtomicU64,
) {
    // Requests arrive on a plain thread reading stdin.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let mut w = line.split_whitespace();
        match (w.next(), w.next().and_then(|v| v.parse::<usize>().ok())) {
            (Some("stats"), _) => println!("{}", accepted.load(Ordering::Relaxed)),
            (Some("kill"), Some(i)) if (first..end).contains(&i) => {
                let i = i - first;
                // The death starts when the listener starts closing: a check refused
                // before the abort is awaited is a detection, not a false alarm.
                let died = monotonic_ns();
                handles[i].abort();
                let _ = (&mut handles[i]).await;
                println!("{died}");
            }
            _ => println!("?"),
        }
    }
}

/// Counts SYNs (SYN alone set) arriving in this namespace, from a raw TCP socket (which
/// gets a copy of every TCP segment for a local address), on a thread of its own.
fn count_syns(count: Arc<AtomicU64>) -> Result<(), String> {
    // SAFETY: plain system call; the descriptor is owned by the thread below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )
    };
    if fd < 0 {
        return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: `buf` is a valid buffer of the length given.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return;
            }
            if tcp_segment::syn_destination_port(&buf[..n as usize]).is_some() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok(())
}
