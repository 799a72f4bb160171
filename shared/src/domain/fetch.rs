//! Which URLs the backend may fetch provider media from (SSRF guard, pure part).
//!
//! https only, to an allowlist of provider hosts, never to private, loopback, link-local or
//! otherwise internal addresses. A local stack may allow plain http to loopback explicitly
//! (its provider sandbox runs there); nothing else can.

use std::net::IpAddr;

use url::{Host, Url};

/// Provider media hosts allowed by default (suffix match on a dot boundary).
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &[
    "graph.facebook.com",
    "lookaside.fbsbx.com",
    "fbsbx.com",
    "fbcdn.net",
    "cdninstagram.com",
    "api.weixin.qq.com",
    "qpic.cn",
];

/// Where media may be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Host names (or parent domains) allowed.
    pub allowed_hosts: Vec<String>,
    /// Local stacks only: allow `http://127.0.0.1`/`localhost` (the provider sandbox).
    pub allow_loopback: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allowed_hosts: DEFAULT_ALLOWED_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            allow_loopback: false,
        }
    }
}

/// Whether a URL names this machine (`localhost`, `127.0.0.0/8`, `[::1]`).
pub fn is_loopback_url(url: &str) -> bool {
    match Url::parse(url.trim()).ok().as_ref().and_then(Url::host) {
        Some(Host::Domain(d)) => d.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The local stacks' rule: media is fetched from loopback whenever a provider API base
/// (`META_GRAPH_URL`, `WECHAT_API_URL`) points at loopback, since that stand-in serves the
/// media too; `explicit` (`MEDIA_FETCH_ALLOW_LOOPBACK=true`) turns it on regardless.
pub fn loopback_fetch_allowed<'a>(
    provider_urls: impl IntoIterator<Item = &'a str>,
    explicit: bool,
) -> bool {
    explicit || provider_urls.into_iter().any(is_loopback_url)
}

/// Whether an address is one a provider's public media can never live on.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..=127).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // Site-local (deprecated), NAT64, 6to4 and Teredo can all reach IPv4
                // space, internal addresses included; IPv4-compatible addresses too.
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || s[0] == 0x2002
                || (s[0] == 0x2001 && s[1] == 0)
                || s[..6].iter().all(|x| *x == 0)
        }
    }
}

impl FetchPolicy {
    /// Whether a resolved address may be connected to.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || (self.allow_loopback && ip.is_loopback())
    }

    /// Checks a URL before any connection; the reason when refused.
    pub fn check(&self, url: &Url) -> Result<(), &'static str> {
        let host = url.host().ok_or("the URL has no host")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials are not fetched");
        }
        let loopback = match &host {
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        };
        if self.allow_loopback && loopback {
            return match url.scheme() {
                "http" | "https" => Ok(()),
                _ => Err("only http(s) is fetched"),
            };
        }
        if url.scheme() != "https" {
            return Err("only https URLs are fetched");
        }
        match host {
            Host::Domain(domain) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                let allowed = self
                    .allowed_hosts
                    .iter()
                    .any(|h| domain == *h || domain.ends_with(&format!(".{h}")));
                if allowed {
                    Ok(())
                } else {
                    Err("the host is not a provider media host")
                }
            }
            // Providers serve media by name; a literal address is never theirs.
            Host::Ipv4(_) | Host::Ipv6(_) => Err("IP address URLs are not fetched"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: &FetchPolicy, url: &str) -> Result<(), &'static str> {
        policy.check(&Url::parse(url).unwrap())
    }

    #[test]
    fn provider_hosts_over_https_are_allowed() {
        let p = FetchPolicy::default();
        assert!(
            check(
                &p,
                "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"
            )
            .is_ok()
        );
        assert!(check(&p, "https://scontent.xx.fbcdn.net/v/t1/abc.jpg").is_ok());
        assert!(check(&p, "https://graph.facebook.com/v21.0/123").is_ok());
    }

    #[test]
    fn ssrf_shaped_urls_are_refused() {
        let p = FetchPolicy::default();
        for url in [
            "http://lookaside.fbsbx.com/x",
            "https://evilfbcdn.net/x",
            "https://fbcdn.net.evil.com/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://localhost/x",
            "https://user:pw@lookaside.fbsbx.com/x",
            "file:///etc/passwd",
            "gopher://lookaside.fbsbx.com/x",
            "https://10.0.0.1/x",
        ] {
            assert!(check(&p, url).is_err(), "{url}");
        }
    }

    #[test]
    fn loopback_fetching_is_on_whenever_a_provider_url_points_at_loopback() {
        let remote = [
            "https://graph.facebook.com/v21.0",
            "https://api.weixin.qq.com",
        ];
        assert!(!loopback_fetch_allowed(remote, false));
        assert!(loopback_fetch_allowed(remote, true));
        for local in [
            "http://127.0.0.1:3100/graph",
            "http://localhost:4010/wechat",
            "http://LOCALHOST./graph",
            "http://127.8.9.10/graph",
            "http://[::1]:3100/graph",
        ] {
            assert!(
                loopback_fetch_allowed(["https://graph.facebook.com/v21.0", local], false),
                "{local}"
            );
        }
        for elsewhere in [
            "http://10.0.0.5:3100/graph",
            "https://localhost.evil.com/graph",
            "http://sandbox.localhost:3100/graph",
            "not a url",
            "",
        ] {
            assert!(!loopback_fetch_allowed([elsewhere], false), "{elsewhere}");
        }
    }

    #[test]
    fn internal_addresses_are_never_connected_to() {
        let p = FetchPolicy::default();
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "::10.0.0.1",
            "fec0::1",
        ] {
            assert!(!p.address_allowed(ip.parse().unwrap()), "{ip}");
        }
        assert!(p.address_allowed("157.240.1.1".parse().unwrap()));
        let local = FetchPolicy {
            allow_loopback: true,
            ..FetchPolicy::default()
        };
        assert!(local.address_allowed("127.0.0.1".parse().unwrap()));
        assert!(!local.address_allowed("10.0.0.1".parse().unwrap()));
        assert!(check(&local, "http://127.0.0.1:4010/files/1").is_ok());
        assert!(check(&local, "http://10.0.0.1/files/1").is_err());
    }
}
