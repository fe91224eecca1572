//! `x.pe` peer addresses (BEP 9).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;

use crate::ParamError;

/// Longest host name accepted in an `x.pe` address (the DNS limit).
const MAX_HOST_LEN: usize = 253;

/// A peer address from an `x.pe` parameter: an IP socket address or a host name
/// with a port.
///
/// [`PeerAddr::parse`] puts IP literals (`1.2.3.4:6881`, `[2001:db8::1]:6881`,
/// `[fe80::1%2]:6881`) in [`PeerAddr::Ip`] and everything else in
/// [`PeerAddr::Host`]; a `Host` built by hand should follow the same rule (a name
/// that is not an IP literal, made of letters, digits, `-`, `.` and `_`) for the
/// link to read back the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A host name to resolve, and a port.
    Host {
        /// The host name, as given.
        host: String,
        /// The port.
        port: u16,
    },
}

impl PeerAddr {
    /// Parses `host:port`, `IPv4:port` or `[IPv6]:port` (an IPv6 address may carry a
    /// numeric `%scope`). The port is 1 to 5 decimal digits, at most 65535.
    pub fn parse(s: &str) -> Result<PeerAddr, ParamError> {
        if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or(ParamError::PeerAddress)?;
            let port = after.strip_prefix(':').ok_or(ParamError::PeerAddress)?;
            let port = parse_port(port)?;
            let (ip, scope) = match inside.split_once('%') {
                Some((ip, scope)) => (ip, parse_decimal_u32(scope)?),
                None => (inside, 0),
            };
            let ip = Ipv6Addr::from_str(ip).map_err(|_| ParamError::PeerAddress)?;
            return Ok(PeerAddr::Ip(SocketAddr::V6(SocketAddrV6::new(
                ip, port, 0, scope,
            ))));
        }
        let (host, port) = s.rsplit_once(':').ok_or(ParamError::PeerAddress)?;
        let port = parse_port(port)?;
        if let Ok(ip) = Ipv4Addr::from_str(host) {
            return Ok(PeerAddr::Ip(SocketAddr::new(ip.into(), port)));
        }
        if !valid_host(host) {
            return Err(ParamError::PeerAddress);
        }
        Ok(PeerAddr::Host {
            host: host.to_owned(),
            port,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            PeerAddr::Ip(a) => a.port(),
            PeerAddr::Host { port, .. } => *port,
        }
    }
}

/// A host name: non-empty, at most 253 bytes, letters (any script), digits, `-`, `.`
/// and `_`, and not made only of digits and dots (that is a malformed IPv4 address).
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn parse_port(s: &str) -> Result<u16, ParamError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::Port);
    }
    s.parse().map_err(|_| ParamError::Port)
}

fn parse_decimal_u32(s: &str) -> Result<u32, ParamError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::PeerAddress);
    }
    s.parse().map_err(|_| ParamError::PeerAddress)
}

impl FromStr for PeerAddr {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, ParamError> {
        PeerAddr::parse(s)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        PeerAddr::Ip(a)
    }
}

/// `1.2.3.4:6881`, `[2001:db8::1]:6881` or `host.example:6881`, not percent-encoded.
impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(a) => write!(f, "{a}"),
            PeerAddr::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_host_forms() {
        let v4 = PeerAddr::parse("10.0.0.1:6881").unwrap();
        assert_eq!(v4, PeerAddr::Ip("10.0.0.1:6881".parse().unwrap()));
        assert_eq!(v4.port(), 6881);
        let v6 = PeerAddr::parse("[2001:db8::1]:51413").unwrap();
        assert_eq!(v6, PeerAddr::Ip("[2001:db8::1]:51413".parse().unwrap()));
        assert_eq!(v6.to_string(), "[2001:db8::1]:51413");
        let scoped = PeerAddr::parse("[fe80::1%3]:80").unwrap();
        assert_eq!(scoped.to_string(), "[fe80::1%3]:80");
        let mapped = PeerAddr::parse("[::ffff:1.2.3.4]:80").unwrap();
        assert_eq!(PeerAddr::parse(&mapped.to_string()).unwrap(), mapped);
        let host = PeerAddr::parse("peer.example.org:080").unwrap();
        assert_eq!(
            host,
            PeerAddr::Host {
                host: "peer.example.org".into(),
                port: 80
            }
        );
        assert_eq!(host.to_string(), "peer.example.org:80");
        assert!(matches!(
            PeerAddr::parse("bücher.example:1").unwrap(),
            PeerAddr::Host { .. }
        ));
        assert_eq!(PeerAddr::parse("0.0.0.0:0").unwrap().port(), 0);
    }

    #[test]
    fn malformed() {
        for (s, e) in [
            ("10.0.0.1", ParamError::PeerAddress),
            ("10.0.0.1:", ParamError::Port),
            ("10.0.0.1:65536", ParamError::Port),
            ("10.0.0.1:+80", ParamError::Port),
            ("10.0.0.1:123456", ParamError::Port),
            ("::1:80", ParamError::PeerAddress),
            ("[::1]", ParamError::PeerAddress),
            ("[::1]80", ParamError::PeerAddress),
            ("[::1:80", ParamError::PeerAddress),
            ("[1.2.3.4]:80", ParamError::PeerAddress),
            ("[fe80::1%eth0]:80", ParamError::PeerAddress),
            ("[fe80::1%]:80", ParamError::PeerAddress),
            ("[::1]:x", ParamError::Port),
            (":80", ParamError::PeerAddress),
            ("01.2.3.4:80", ParamError::PeerAddress),
            ("a b:80", ParamError::PeerAddress),
            ("a/b:80", ParamError::PeerAddress),
            ("", ParamError::PeerAddress),
        ] {
            assert_eq!(PeerAddr::parse(s), Err(e), "{s:?}");
        }
        let long = format!("{}:1", "a".repeat(254));
        assert_eq!(PeerAddr::parse(&long), Err(ParamError::PeerAddress));
    }
}
