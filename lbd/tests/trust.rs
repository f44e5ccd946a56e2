//! Config signatures made by OpenSSH's own `ssh-keygen -Y sign`, checked by our verifier: the
//! stock tool is what operators sign with, so the test signs with it too, and checks our
//! verdicts against `ssh-keygen -Y verify` on the same bytes.

use std::path::Path;
use std::process::Command;

use lbd::trust::{self, TrustError};

fn ssh_keygen() -> Command {
    lbtest::programs::command("ssh-keygen")
}

fn run(cmd: &mut Command) -> std::process::Output {
    lbtest::process::run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

use lbtest::operator_keys::{keypair, sign};

fn public(key: &Path) -> Vec<trust::PublicKey> {
    let text = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    trust::parse_keys(&text, "key.pub").unwrap()
}

#[test]
fn signatures_of_ssh_keygen_verify_and_tampering_is_caught() {
    let dir = lbtest::ScratchDir::new("lbd-trust");
    let ops = keypair(dir.path(), "ops");
    let other = keypair(dir.path(), "other");
    let file = dir.path().join("lb.toml");
    let config = b"[release]\nserial = 1\nnode = \"lb1\"\n\n[node]\nhostname = \"lb1\"\n".to_vec();
    std::fs::write(&file, &config).unwrap();
    let trusted = public(&ops);

    let sig = sign(&ops, trust::NAMESPACE, &file);
    let key = trust::verify(&config, &sig, &trusted).expect("a good signature verifies");
    assert_eq!(key.comment, "ops@test");
    // Our fingerprint is ssh-keygen's.
    let listed = run(ssh_keygen()
        .arg("-l")
        .arg("-f")
        .arg(ops.with_extension("pub")));
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&key.fingerprint()),
        "{listed} vs {}",
        key.fingerprint()
    );

    // One byte changed.
    let mut changed = config.clone();
    changed[20] ^= 1;
    assert!(matches!(
        trust::verify(&changed, &sig, &trusted),
        Err(TrustError::BadSignature { .. })
    ));
    // Another key.
    let theirs = sign(&other, trust::NAMESPACE, &file);
    match trust::verify(&config, &theirs, &trusted) {
        Err(TrustError::UntrustedKey { fingerprint }) => {
            assert_eq!(fingerprint, public(&other)[0].fingerprint())
        }
        other => panic!("{other:?}"),
    }
    // Another namespace (a git commit signature with the same key, say).
    let git = sign(&ops, "git", &file);
    assert_eq!(
        trust::verify(&config, &git, &trusted),
        Err(TrustError::Namespace {
            found: "git".into()
        })
    );
    // Both keys trusted: either signature verifies.
    let both: Vec<_> = trusted.iter().cloned().chain(public(&other)).collect();
    assert!(trust::verify(&config, &theirs, &both).is_ok());

    // ssh-keygen agrees on the same bytes.
    let signers = dir.path().join("allowed_signers");
    std::fs::write(
        &signers,
        format!(
            "ops@test {}\n",
            std::fs::read_to_string(ops.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();
    let verdict = |bytes: &[u8], sig_bytes: &[u8]| {
        let sig_file = dir.path().join("check.sig");
        std::fs::write(&sig_file, sig_bytes).unwrap();
        let mut child = ssh_keygen()
            .args([
                "-Y",
                "verify",
                "-n",
                trust::NAMESPACE,
                "-I",
                "ops@test",
                "-f",
            ])
            .arg(&signers)
            .arg("-s")
            .arg(&sig_file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait().unwrap().success()
    };
    assert!(verdict(&config, &sig));
    assert!(!verdict(&changed, &sig));
    // The allowed_signers line parses as a trusted key too.
    let from_signers = trust::parse_keys(
        &std::fs::read_to_string(&signers).unwrap(),
        "allowed_signers",
    )
    .unwrap();
    assert_eq!(from_signers, trusted);
}
