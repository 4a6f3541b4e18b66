//! Where a webhook may point. Kiln sits next to its own database, runners and a team's other
//! services, so a hook must not become a way to make it call them (server-side request
//! forgery): unless `--allow-local-webhooks` is given, a hook's URL may not name or resolve
//! to loopback, private, link-local or otherwise non-public addresses. The URL is checked when
//! a hook is created or changed (refused with 422, GitLab's `Invalid url given`), and again
//! at every delivery through the resolver (`PublicOnly`), so a name that later resolves to a
//! private address is not followed either.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long a name may take to resolve when a hook is saved.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("Only allowed schemes are http, https")]
    Scheme,
    #[error("must be a valid URL")]
    Malformed,
    #[error("Host cannot be resolved or invalid")]
    Unresolvable,
    #[error("Requests to localhost are not allowed")]
    Loopback,
    #[error("Requests to the local network are not allowed")]
    LocalNetwork,
}

/// The URL, parsed and checked (its host resolved when it is a name).
pub async fn check(url: &str, allow_local: bool) -> Result<Url, TargetError> {
    let parsed = Url::parse(url.trim()).map_err(|_| TargetError::Malformed)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    let host = parsed.host_str().ok_or(TargetError::Malformed)?;
    if host.is_empty() {
        return Err(TargetError::Malformed);
    }
    if allow_local {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses = resolve(host, port).await?;
    for address in addresses {
        refuse_local(address.ip())?;
    }
    Ok(parsed)
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::net::lookup_host((bare, port));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(found)) => {
            let found: Vec<_> = found.collect();
            if found.is_empty() {
                Err(TargetError::Unresolvable)
            } else {
                Ok(found)
            }
        }
        _ => Err(TargetError::Unresolvable),
    }
}

/// Refuses an address that is not on the public internet.
pub fn refuse_local(ip: IpAddr) -> Result<(), TargetError> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return Err(TargetError::Loopback);
    }
    let local = match ip {
        IpAddr::V4(v4) => is_local_v4(v4),
        IpAddr::V6(v6) => is_local_v6(v6),
    };
    if local {
        Err(TargetError::LocalNetwork)
    } else {
        Ok(())
    }
}

fn is_local_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking and reserved ranges.
        || (a == 198 && (18..20).contains(&b))
        || a >= 240
}

fn is_local_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    // Unique local fc00::/7, link-local fe80::/10, multicast ff00::/8.
    (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 || (first & 0xff00) == 0xff00
}

/// The delivery client's resolver: the system's, with every non-public address refused.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let mut allowed = Vec::new();
            for address in found {
                refuse_local(address.ip())
                    .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)?;
                allowed.push(address);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_targets_are_refused_unless_allowed() {
        for (url, expected) in [
            ("http://127.0.0.1:9000/hook", TargetError::Loopback),
            ("http://localhost/hook", TargetError::Loopback),
            ("http://[::1]/hook", TargetError::Loopback),
            ("http://0.0.0.0/", TargetError::Loopback),
            ("http://10.1.2.3/", TargetError::LocalNetwork),
            ("http://172.16.0.1/", TargetError::LocalNetwork),
            ("http://192.168.1.1/", TargetError::LocalNetwork),
            (
                "http://169.254.169.254/latest/meta-data",
                TargetError::LocalNetwork,
            ),
            ("http://100.64.0.1/", TargetError::LocalNetwork),
            ("http://[fd00::1]/", TargetError::LocalNetwork),
            ("http://[::ffff:127.0.0.1]/", TargetError::Loopback),
            ("ftp://example.com/", TargetError::Scheme),
            ("not a url", TargetError::Malformed),
        ] {
            assert_eq!(check(url, false).await.err(), Some(expected), "{url}");
        }
        assert!(check("http://127.0.0.1:9000/hook", true).await.is_ok());
        assert_eq!(
            check("ftp://127.0.0.1/", true).await.err(),
            Some(TargetError::Scheme)
        );
        assert!(check("https://93.184.215.14/hook", false).await.is_ok());
    }
}
