//! TFTP client against real servers on loopback: in.tftpd (tftpd-hpa) and dnsmasq, plus a
//! scripted UDP peer for misbehaviour a stock server does not show on demand (stray transfer
//! IDs, lost ACKs, duplicate DATA).

mod fetch_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fetch_common::*;
use init::fetch::tftp::{self, ErrorCode, Packet, ReadConfig, TftpError, TransferError};
use init::fetch::{AttemptError, FetchError, FetchOutcome, FetchUrl, Fetcher, Vars};

/// Sizes around the block boundaries (512 and 1468) and a multi-block file.
const SIZES: [usize; 9] = [0, 1, 511, 512, 513, 1467, 1468, 2936, 100_000];

fn blocks_for(len: usize, blksize: usize) -> u64 {
    (len / blksize + 1) as u64
}

/// Fetches every size through the [`Fetcher`] (the path PID 1 uses) and through
/// [`tftp::read`] (to see what was negotiated), comparing bytes.
async fn transfer_all_sizes(server: SocketAddr, dir: &TempDir, expect_tsize: bool) {
    for (i, &len) in SIZES.iter().enumerate() {
        let name = format!("sizes/f{len}.bin");
        let content = pattern(len, i as u32);
        dir.write(&name, &content);

        let url = format!("tftp://{server}/{name}");
        let mut fetcher = Fetcher::from_templates(&[&url], Vars::default())
            .unwrap()
            .with_attempt_timeout(Duration::from_secs(5));
        match fetcher.fetch(None).await {
            Ok(FetchOutcome::New(f)) => {
                assert_eq!(f.bytes.len(), len, "{url}");
                assert!(f.bytes == content, "{url}: content differs");
                assert_eq!(f.url, FetchUrl::parse(&url).unwrap());
            }
            other => panic!("{url}: {other:?}"),
        }

        let read = tftp::read(ReadConfig::new(server, &name)).await.unwrap();
        assert!(read.data == content, "{name}: content differs");
        assert_eq!(read.blksize, 1468, "{name}: blksize granted");
        assert_eq!(read.blocks, blocks_for(len, 1468), "{name}: blocks");
        let tsize = expect_tsize.then_some(len as u64);
        assert_eq!(read.announced_size, tsize, "{name}: tsize");
        assert_eq!(read.server_tid.ip(), server.ip());
        assert_ne!(
            read.server_tid.port(),
            server.port(),
            "server should answer from a new TID"
        );
    }
}

#[tokio::test]
async fn in_tftpd_serves_all_sizes() {
    bounded(async {
        let dir = TempDir::new("tftpd-sizes");
        let (_server, addr) = in_tftpd(dir.path()).await;
        transfer_all_sizes(addr, &dir, true).await;
    })
    .await
}

#[tokio::test]
async fn dnsmasq_serves_all_sizes() {
    bounded(async {
        let dir = TempDir::new("dnsmasq-sizes");
        let (_server, addr) = dnsmasq_tftp(dir.path()).await;
        transfer_all_sizes(addr, &dir, true).await;
    })
    .await
}

#[tokio::test]
async fn smaller_granted_blocksize_is_used() {
    bounded(async {
        let dir = TempDir::new("tftpd-bs");
        let content = pattern(5000, 3);
        dir.write("f", &content);
        let (_server, addr) = in_tftpd_with(dir.path(), &["--blocksize", "1024"]).await;
        let read = tftp::read(ReadConfig::new(addr, "f")).await.unwrap();
        assert_eq!(read.blksize, 1024);
        assert_eq!(read.blocks, 5);
        assert!(read.data == content);
    })
    .await
}

#[tokio::test]
async fn server_ignoring_options_means_512_byte_blocks() {
    bounded(async {
        let dir = TempDir::new("tftpd-noopt");
        let (_server, addr) = in_tftpd_with(
            dir.path(),
            &[
                "--refuse", "blksize", "--refuse", "tsize", "--refuse", "timeout",
            ],
        )
        .await;
        for len in [0usize, 511, 512, 513, 3000] {
            let content = pattern(len, len as u32);
            let name = format!("f{len}");
            dir.write(&name, &content);
            let read = tftp::read(ReadConfig::new(addr, &name)).await.unwrap();
            assert_eq!(read.blksize, 512, "{name}");
            assert_eq!(read.announced_size, None, "{name}");
            assert_eq!(read.blocks, blocks_for(len, 512), "{name}");
            assert!(read.data == content, "{name}");
        }
        // And a client that asks for nothing gets the same.
        let plain = ReadConfig {
            blksize: None,
            ask_tsize: false,
            ask_timeout: false,
            ..ReadConfig::new(addr, "f3000")
        };
        assert_eq!(tftp::read(plain).await.unwrap().data.len(), 3000);
    })
    .await
}

fn server_error(e: &TftpError) -> (ErrorCode, &str) {
    match e {
        TftpError::Transfer(TransferError::Server { code, message }) => (*code, message.as_str()),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_file_reports_the_servers_message() {
    bounded(async {
        let dir = TempDir::new("tftp-missing");
        let (_tftpd, tftpd) = in_tftpd(dir.path()).await;
        let (_dnsmasq, dnsmasq) = dnsmasq_tftp(dir.path()).await;
        for server in [tftpd, dnsmasq] {
            let e = tftp::read(ReadConfig::new(server, "nope.toml"))
                .await
                .unwrap_err();
            let (code, message) = server_error(&e);
            assert_eq!(code, ErrorCode::FileNotFound, "{server}: {e}");
            assert!(!message.is_empty(), "{server}: empty message");
            // The server's own words are in our error, and so in the fetcher's.
            assert!(e.to_string().contains(message), "{e}");

            let url = format!("tftp://{server}/nope.toml");
            let mut fetcher = Fetcher::from_templates(&[&url], Vars::default()).unwrap();
            let err = fetcher.fetch(None).await.unwrap_err();
            let text = err.to_string();
            let shown = FetchUrl::parse(&url).unwrap().to_string();
            assert!(text.contains(&shown) && text.contains(message), "{text}");
        }
    })
    .await
}

#[tokio::test]
async fn oversized_file_is_refused() {
    bounded(async {
        let dir = TempDir::new("tftp-big");
        dir.write("big", pattern(10_000, 9));
        let (server, addr) = in_tftpd(dir.path()).await;

        // With tsize the refusal comes before any DATA.
        let cfg = ReadConfig {
            max_size: 9_999,
            ..ReadConfig::new(addr, "big")
        };
        let e = tftp::read(cfg).await.unwrap_err();
        match &e {
            TftpError::Transfer(TransferError::TooLarge { limit, detail }) => {
                assert_eq!(*limit, 9_999);
                assert_eq!(detail, "server announced 10000 bytes");
            }
            other => panic!("{other:?}"),
        }

        // Without tsize it comes when the received bytes pass the limit.
        let cfg = ReadConfig {
            max_size: 4_000,
            ask_tsize: false,
            ..ReadConfig::new(addr, "big")
        };
        let e = tftp::read(cfg).await.unwrap_err();
        match &e {
            TftpError::Transfer(TransferError::TooLarge { limit, detail }) => {
                assert_eq!(*limit, 4_000);
                assert!(detail.contains("4404 bytes received by DATA 3"), "{detail}");
            }
            other => panic!("{other:?}"),
        }

        // Through the fetcher, the limit is `with_max_size`.
        let url = format!("tftp://{addr}/big");
        let mut fetcher = Fetcher::from_templates(&[&url], Vars::default())
            .unwrap()
            .with_max_size(1000);
        let err = fetcher.fetch(None).await.unwrap_err();
        assert!(err.to_string().contains("limit of 1000 bytes"), "{err}");
        drop(server);
    })
    .await
}

#[tokio::test]
async fn silent_server_times_out_after_the_retries() {
    bounded(async {
        // A bound UDP socket that never answers: the request is delivered and ignored.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let cfg = ReadConfig {
            timeout: Duration::from_millis(100),
            retries: 3,
            ..ReadConfig::new(addr, "x")
        };
        let started = Instant::now();
        let e = tftp::read(cfg).await.unwrap_err();
        let elapsed = started.elapsed();
        match &e {
            TftpError::Transfer(TransferError::Timeout {
                waiting_for,
                attempts,
                ..
            }) => {
                assert_eq!(waiting_for, "reply to the read request");
                assert_eq!(*attempts, 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        // The server really saw the request and its 3 retransmissions.
        let mut buf = [0u8; 600];
        let mut requests = 0;
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(50), silent.recv_from(&mut buf)).await
        {
            assert!(matches!(Packet::parse(&buf[..n]), Ok(Packet::Rrq { .. })));
            requests += 1;
        }
        assert_eq!(requests, 4);

        // The fetcher's per-attempt timeout cuts a slow retry budget short.
        let url = format!("tftp://{addr}/x");
        let mut fetcher = Fetcher::from_templates(&[&url], Vars::default())
            .unwrap()
            .with_attempt_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = fetcher.fetch(None).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        match err {
            FetchError::AllFailed { failures } => {
                assert!(
                    matches!(failures[0].error, AttemptError::Timeout(_)),
                    "{failures:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    })
    .await
}

/// Receives one packet on `socket` (at most 3 s).
async fn recv(socket: &tokio::net::UdpSocket) -> (Packet, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf))
        .await
        .expect("peer waited too long for the client")
        .unwrap();
    (
        Packet::parse(&buf[..n]).expect("client sent a valid packet"),
        from,
    )
}

/// A scripted server: the request arrives on `listen`, the transfer runs from `tid`, and a
/// third socket `stray` butts in. Checks what the client sends at each step.
#[tokio::test]
async fn stray_tids_lost_acks_and_duplicates_over_real_sockets() {
    bounded(async {
        let listen = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tid = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stray = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = listen.local_addr().unwrap();
        let content = pattern(512 * 2 + 10, 5);

        let peer = async {
            let (rrq, client) = recv(&listen).await;
            assert!(
                matches!(rrq, Packet::Rrq { ref filename, .. } if filename == "cfg"),
                "{rrq:?}"
            );
            let data = |block: u16| Packet::Data {
                block,
                data: content
                    [(block as usize - 1) * 512..(block as usize * 512).min(content.len())]
                    .to_vec(),
            };
            // No OACK: plain 512-byte blocks from the new port.
            tid.send_to(&data(1).emit(), client).await.unwrap();
            assert_eq!(recv(&tid).await.0, Packet::Ack { block: 1 });

            // Someone else sends DATA 2: the client answers them with ERROR 5 and carries on.
            stray.send_to(&data(2).emit(), client).await.unwrap();
            let (e, _) = recv(&stray).await;
            assert!(
                matches!(
                    e,
                    Packet::Error {
                        code: ErrorCode::UnknownTid,
                        ..
                    }
                ),
                "{e:?}"
            );

            // Pretend our DATA 1 retransmission crossed the client's ACK: duplicates of block 1
            // get one re-ACK in total.
            tid.send_to(&data(1).emit(), client).await.unwrap();
            tid.send_to(&data(1).emit(), client).await.unwrap();
            tid.send_to(&data(1).emit(), client).await.unwrap();
            assert_eq!(recv(&tid).await.0, Packet::Ack { block: 1 });

            // Say nothing: the client's timer retransmits ACK 1 (not more re-ACKs of the dups).
            let before = Instant::now();
            assert_eq!(recv(&tid).await.0, Packet::Ack { block: 1 });
            assert!(
                before.elapsed() >= Duration::from_millis(150),
                "{:?}",
                before.elapsed()
            );

            tid.send_to(&data(2).emit(), client).await.unwrap();
            assert_eq!(recv(&tid).await.0, Packet::Ack { block: 2 });
            tid.send_to(&data(3).emit(), client).await.unwrap();
            assert_eq!(recv(&tid).await.0, Packet::Ack { block: 3 });
        };
        let cfg = ReadConfig {
            timeout: Duration::from_millis(250),
            ..ReadConfig::new(server, "cfg")
        };
        let (read, ()) = tokio::join!(tftp::read(cfg), peer);
        let read = read.unwrap();
        assert!(read.data == content);
        assert_eq!(read.blksize, 512);
        assert_eq!(read.server_tid, tid.local_addr().unwrap());
    })
    .await
}
