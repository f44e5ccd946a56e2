//! Configs the validator refused, remembered per URL, so that a server that keeps serving the
//! same bad config costs a 304 per poll (when it sends an `ETag`) or a download and a hash
//! (when it does not), not a parse, the gate and its companions' fetches each time.
//!
//! Only the validator's verdict is remembered: it depends on the body alone. A gate's refusal
//! (a missing signature) may turn into an acceptance with the same body once the signature is
//! published, so it is never short-cut. Pure.

use super::http::Validators;
use super::url::FetchUrl;
use super::Fetched;

/// One refused body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rejection {
    url: FetchUrl,
    sha256: [u8; 32],
    etag: Option<String>,
    reason: String,
}

/// The last body the validator refused, per configured URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rejections {
    by_url: Vec<Rejection>,
}

impl Rejections {
    fn get(&self, url: &FetchUrl) -> Option<&Rejection> {
        self.by_url.iter().find(|r| &r.url == url)
    }

    /// Remembers that `fetched`, served for `url`, was refused for `reason`.
    pub(crate) fn remember(&mut self, url: &FetchUrl, fetched: &Fetched, reason: &str) {
        self.forget(url);
        self.by_url.push(Rejection {
            url: url.clone(),
            sha256: fetched.sha256,
            etag: fetched.etag.clone(),
            reason: reason.to_string(),
        });
    }

    /// Forgets `url`'s refusal: it served something else.
    pub(crate) fn forget(&mut self, url: &FetchUrl) {
        self.by_url.retain(|r| &r.url != url);
    }

    /// The `ETag` of the body refused for `url`, to ask the server whether it still has exactly
    /// that body. Only the `ETag`: `If-None-Match` is an exact match, while `If-Modified-Since`
    /// is a date comparison that a good config restored with its older time stamp would pass
    /// as "not modified", and init would go on refusing a fixed config.
    pub(crate) fn etag(&self, url: &FetchUrl) -> Option<&str> {
        self.get(url).and_then(|r| r.etag.as_deref())
    }

    /// The validators to send to `url`: the refused body's `ETag` while there is one (the
    /// server last served that body, so that is what it most likely still has), else the
    /// running config's (when it came from `url`).
    pub(crate) fn validators<'a>(
        &'a self,
        url: &FetchUrl,
        previous: Option<&'a Fetched>,
    ) -> Validators<'a> {
        match self.etag(url) {
            Some(etag) => Validators {
                etag: Some(etag),
                last_modified: None,
            },
            None => previous
                .filter(|p| &p.url == url)
                .map(Fetched::validators)
                .unwrap_or_default(),
        }
    }

    /// Why `url` refused this very body before, if it did.
    pub(crate) fn refused_before(&self, url: &FetchUrl, fetched: &Fetched) -> Option<&str> {
        self.get(url)
            .filter(|r| r.sha256 == fetched.sha256)
            .map(|r| r.reason.as_str())
    }

    /// Why `url` refused the body whose `ETag` was sent, now that the server answered 304.
    pub(crate) fn still_refused(&self, url: &FetchUrl) -> Option<&str> {
        self.get(url)
            .filter(|r| r.etag.is_some())
            .map(|r| r.reason.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn fetched(url: &FetchUrl, body: &'static [u8], etag: Option<&str>) -> Fetched {
        Fetched {
            etag: etag.map(str::to_string),
            last_modified: Some("Tue, 01 Jul 2025 10:00:00 GMT".into()),
            ..Fetched::new(Bytes::from_static(body), url.clone(), url.clone())
        }
    }

    #[test]
    fn a_refused_body_is_asked_about_by_its_etag_and_known_by_its_hash() {
        let a = FetchUrl::parse("http://10.0.0.1/a.toml").unwrap();
        let b = FetchUrl::parse("http://10.0.0.2/a.toml").unwrap();
        let running = fetched(&a, b"good", Some("\"g\""));
        let bad = fetched(&a, b"bad", Some("\"b\""));
        let mut r = Rejections::default();
        assert_eq!(r.validators(&a, Some(&running)), running.validators());
        assert_eq!(r.still_refused(&a), None);

        r.remember(&a, &bad, "1 error(s): line 1");
        let sent = r.validators(&a, Some(&running));
        assert_eq!((sent.etag, sent.last_modified), (Some("\"b\""), None));
        assert_eq!(r.still_refused(&a), Some("1 error(s): line 1"));
        assert_eq!(r.refused_before(&a, &bad), Some("1 error(s): line 1"));
        assert_eq!(r.refused_before(&a, &running), None);
        // Another URL is not concerned.
        assert_eq!(r.refused_before(&b, &fetched(&b, b"bad", None)), None);
        assert_eq!(r.validators(&b, Some(&running)), Validators::default());

        r.forget(&a);
        assert_eq!(r.refused_before(&a, &bad), None);
        assert_eq!(r.validators(&a, Some(&running)), running.validators());
    }

    #[test]
    fn without_an_etag_the_running_configs_validators_are_sent_and_the_hash_decides() {
        let a = FetchUrl::parse("http://10.0.0.1/a.toml").unwrap();
        let running = fetched(&a, b"good", None);
        let bad = fetched(&a, b"bad", None);
        let mut r = Rejections::default();
        r.remember(&a, &bad, "why");
        assert_eq!(r.validators(&a, Some(&running)), running.validators());
        // No ETag was sent, so a 304 speaks of the running config, not of the refused one.
        assert_eq!(r.still_refused(&a), None);
        assert_eq!(r.refused_before(&a, &bad), Some("why"));
        // A second refusal replaces the first.
        let worse = fetched(&a, b"worse", None);
        r.remember(&a, &worse, "why not");
        assert_eq!(r.refused_before(&a, &bad), None);
        assert_eq!(r.refused_before(&a, &worse), Some("why not"));
    }
}
