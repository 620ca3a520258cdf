//! Whose request is it: the direct peer, or, when the peer is a trusted proxy,
//! the client its `Forwarded` (RFC 7239) or `X-Forwarded-For` header names.
//! Hops are read from the right (the nearest first); each hop a trusted proxy
//! added is believed about the one before it, and the first address that is
//! not a trusted proxy is the client. A header from an untrusted peer is
//! ignored: anyone can write one. Pure.

use std::net::IpAddr;

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses `trusted_proxies`: addresses (`10.0.0.7`) or networks
/// (`10.0.0.0/8`, `fd00::/8`). The error names the entry.
pub fn parse_trusted_proxies(entries: &[String]) -> Result<TrustedProxies, String> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("{entry:?} is neither an IP address nor a network such as 10.0.0.0/8")
                })
        })
        .collect::<Result<_, _>>()
        .map(TrustedProxies)
}

/// The client's address: `peer`, or what trusted proxies say before it.
/// `forwarded` is the `Forwarded` header, `x_forwarded_for` the
/// `X-Forwarded-For` one (used only without a `Forwarded`).
pub fn client_address(
    peer: IpAddr,
    forwarded: Option<&str>,
    x_forwarded_for: Option<&str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = match (forwarded, x_forwarded_for) {
        (Some(forwarded), _) => forwarded
            .split(',')
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(name, _)| name.eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| node_address(value))
            })
            .collect(),
        (None, Some(list)) => list.split(',').map(node_address).collect(),
        (None, None) => return peer,
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        if !trusted.contains(client) {
            break;
        }
        match hop {
            Some(address) => client = address,
            // An obfuscated or unknown node: the proxy that wrote it is as
            // far as anyone can tell.
            None => break,
        }
    }
    client
}

/// An address as a forwarding header writes it: `192.0.2.1`, `192.0.2.1:80`,
/// `"[2001:db8::1]:443"`, `2001:db8::1`; `None` for `unknown`, `_hidden`, or
/// anything else.
fn node_address(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Ok(address) = value.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse().ok();
    }
    let (host, port) = value.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|entry| entry.to_string()).collect();
        parse_trusted_proxies(&entries).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.9");
        assert_eq!(
            client_address(peer, Some("for=192.0.2.1"), None, &proxies),
            peer
        );
        assert_eq!(
            client_address(peer, None, Some("192.0.2.1"), &proxies),
            peer
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_from_the_right() {
        let proxies = trusted(&["10.0.0.0/8", "192.168.1.1"]);
        let peer = ip("10.0.0.2");
        // The client put a lie first; the trusted proxies appended the truth.
        let xff = "1.1.1.1, 198.51.100.7, 192.168.1.1";
        assert_eq!(
            client_address(peer, None, Some(xff), &proxies),
            ip("198.51.100.7")
        );
        let forwarded = "for=1.1.1.1, for=\"[2001:db8::5]:4711\";proto=https, for=192.168.1.1";
        assert_eq!(
            client_address(peer, Some(forwarded), Some("9.9.9.9"), &proxies),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_address(peer, Some("for=198.51.100.7:8080"), None, &proxies),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn an_unknown_hop_or_no_header_leaves_the_nearest_proxy() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(
            client_address(peer, Some("for=unknown"), None, &proxies),
            peer
        );
        assert_eq!(
            client_address(peer, Some("for=_hidden"), None, &proxies),
            peer
        );
        assert_eq!(client_address(peer, None, None, &proxies), peer);
        // Every hop trusted: the leftmost is as far as it goes.
        assert_eq!(
            client_address(peer, None, Some("10.1.1.1, 10.2.2.2"), &proxies),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn a_bad_entry_is_named() {
        let error =
            parse_trusted_proxies(&["10.0.0.0/8".into(), "proxy.local".into()]).unwrap_err();
        assert!(error.contains("proxy.local"), "{error}");
    }
}
