//! Where webhooks may go. Deliveries leave from inside the operator's
//! network, so a user must not be able to aim them at it (SSRF): by
//! default only public addresses are reached, checked on the addresses the
//! host resolves to right before sending (and sent to exactly those, so a
//! name cannot resolve differently between the check and the request).
//! With WEBHOOK_ALLOWED_HOSTS the operator lists the hosts allowed instead;
//! a listed host may be private or loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// Why a URL's host cannot be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It does not resolve (now): worth another try later.
    Unresolved(String),
    /// It is not allowed: never.
    NotAllowed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unresolved(why) | Refusal::NotAllowed(why) => f.write_str(why),
        }
    }
}

/// The hosts the operator allows; any public one when empty.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<String>);

impl AllowList {
    /// Entries: `host`, `host:port` or `*.domain`.
    pub fn new(entries: &[String]) -> Self {
        AllowList(entries.iter().map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).collect())
    }

    /// Whether any public host is allowed (no list).
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a webhook may be registered for `url`: why not, if not.
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("only http and https URLs".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("no credentials in the URL; verify the signature instead".into());
        }
        let host = parsed.host_str().ok_or("the URL has no host")?.to_owned();
        if self.0.is_empty() {
            let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
            if literal.is_ok_and(|ip| !is_public(ip)) || host == "localhost" || host.ends_with(".localhost") {
                return Err("private, loopback and link-local addresses are not allowed".into());
            }
        } else if !self.lists(&parsed) {
            return Err("this host is not on the server's WEBHOOK_ALLOWED_HOSTS".into());
        }
        Ok(parsed)
    }

    /// The addresses to send to: those `url`'s host resolves to, if all of
    /// them may be reached.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, Refusal> {
        let unresolved = |why: String| Refusal::Unresolved(why);
        let host = url.host_str().ok_or_else(|| Refusal::NotAllowed("the URL has no host".into()))?;
        let port = url.port_or_known_default().ok_or_else(|| Refusal::NotAllowed("the URL has no port".into()))?;
        if !self.0.is_empty() && !self.lists(url) {
            return Err(Refusal::NotAllowed("this host is not on the server's WEBHOOK_ALLOWED_HOSTS".into()));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| unresolved(format!("{host} could not be resolved: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(unresolved(format!("{host} has no address")));
        }
        if self.0.is_empty() {
            if let Some(private) = addrs.iter().find(|a| !is_public(a.ip())) {
                let why = format!("{host} resolves to {}, which is not a public address", private.ip());
                return Err(Refusal::NotAllowed(why));
            }
        }
        Ok(addrs)
    }

    fn lists(&self, url: &Url) -> bool {
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else { return false };
        let with_port = url.port_or_known_default().map(|p| format!("{host}:{p}"));
        self.0.iter().any(|entry| match entry.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => *entry == host || with_port.as_deref() == Some(entry.as_str()),
        })
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 one carries to reach it (mapped, compatible,
/// translated, NAT64, 6to4): what it really reaches.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last_32 = || Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
    match s {
        // ::ffff:a.b.c.d, and ::a.b.c.d (but not :: and ::1).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last_32()),
        [0, 0, 0, 0, 0, 0, _, _] if !(s[6] == 0 && s[7] <= 1) => Some(last_32()),
        // ::ffff:0:a.b.c.d (translated).
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last_32()),
        // NAT64: 64:ff9b::/96 and 64:ff9b:1::/48.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last_32()),
        [0x64, 0xff9b, 1, ..] => Some(last_32()),
        // 6to4: 2002:a.b.c.d::/48.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from(((hi as u32) << 16) | lo as u32)),
        _ => None,
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        // Shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // IETF protocol assignments.
        || (a == 192 && b == 0 && ip.octets()[2] == 0))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local (fc00::/7), link-local (fe80::/10), site-local
        // (fec0::/10).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // Teredo (2001::/32): tunnels to an address it hides.
        || (first == 0x2001 && ip.segments()[1] == 0)
        // Documentation.
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b:1::7f00:1",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "::7f00:1",
            "::ffff:0:a00:1",
            "fec0::1",
            "2001:0:4136:e378::1",
            "192.0.0.8",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in
            ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::101:101", "2002:101:101::1"]
        {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_against_the_list() {
        let open = AllowList::default();
        assert!(open.check_url("https://hooks.example.com/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://10.0.0.5/",
            "http://localhost/",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(open.check_url(bad).is_err(), "{bad}");
        }
        let listed = AllowList::new(&["127.0.0.1".into(), "*.example.org".into(), "hooks.test:8443".into()]);
        assert!(listed.check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(listed.check_url("https://a.example.org/").is_ok());
        assert!(listed.check_url("https://hooks.test:8443/").is_ok());
        assert!(listed.check_url("https://hooks.test/").is_err(), "another port");
        assert!(listed.check_url("https://example.org.evil.com/").is_err());
        assert!(listed.check_url("https://example.com/").is_err());
    }
}
