use super::*;
use address::prefix_from_dotted;
use std::time::Duration;

#[test]
fn secrets_are_not_shown() {
    let s = Secret::new("hunter2");
    assert_eq!(s.expose(), "hunter2");
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
    assert_ne!(s, Secret::new("hunter3"));
}

#[test]
fn durations() {
    let d = |s: &str| s.parse::<ConfigDuration>().map(|d| d.0);
    assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(d("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(d("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(d("1d"), Ok(Duration::from_secs(86400)));
    assert_eq!(d("0s"), Ok(Duration::ZERO));
    assert!(d("5").is_err());
    assert!(d("s").is_err());
    assert!(d("5 parsecs").is_err());
    assert!(d("").is_err());
    assert_eq!(
        ConfigDuration(Duration::from_millis(1500)).to_string(),
        "1500ms"
    );
    assert_eq!(ConfigDuration(Duration::from_secs(3)).to_string(), "3s");
}

#[test]
fn endpoints() {
    let e = |s: &str| s.parse::<Endpoint>();
    assert_eq!(e("192.0.2.1:80").unwrap().to_string(), "192.0.2.1:80");
    assert_eq!(e("192.0.2.1").unwrap().port, None);
    assert_eq!(e("[2001:db8::1]:443").unwrap().port, Some(443));
    assert_eq!(e("2001:db8::1").unwrap().port, None);
    assert!(e("192.0.2.1:70000").unwrap_err().contains("out of range"));
    assert!(e("192.0.2.1:0").unwrap_err().contains("out of range"));
    assert!(e("web1:80").unwrap_err().contains("not resolved"));
    assert!(e("[2001:db8::1").is_err());
}

#[test]
fn prefixes_and_masks() {
    assert_eq!("192.0.2.10/24".parse::<IpPrefix>().unwrap().prefix_len, 24);
    assert_eq!("192.0.2.10".parse::<IpPrefix>().unwrap().prefix_len, 32);
    assert_eq!("2001:db8::1".parse::<IpPrefix>().unwrap().prefix_len, 128);
    assert!("192.0.2.10/33".parse::<IpPrefix>().is_err());
    assert_eq!(prefix_from_dotted("255.255.255.0"), Ok(24));
    assert_eq!(prefix_from_dotted("255.255.255.255"), Ok(32));
    assert_eq!(prefix_from_dotted("0.0.0.0"), Ok(0));
    assert!(prefix_from_dotted("255.0.255.0").is_err());
}

#[test]
fn names() {
    assert_eq!("WLC".parse::<Scheduler>(), Ok(Scheduler::Wlc));
    let err = "wlcx".parse::<Scheduler>().unwrap_err();
    assert!(err.contains("rr, wrr, lc, wlc"), "{err}");
    assert_eq!("gate".parse::<Forwarding>(), Ok(Forwarding::Dr));
    assert_eq!("masq".parse::<Forwarding>(), Ok(Forwarding::Nat));
    assert_eq!("ipip".parse::<Forwarding>(), Ok(Forwarding::Tun));
    assert_eq!("200-299".parse::<StatusRange>().unwrap().high, 299);
    assert!("299-200".parse::<StatusRange>().is_err());
    assert!("700".parse::<StatusRange>().is_err());
}
