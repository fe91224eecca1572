//! A minimal HTTP/1.1 client for tracker announces and scrapes (`http://`, and `https://`
//! with the `tls` feature).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TrackerError;

/// A byte stream a request runs over: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
use crate::http::{
    announce_url, parse_announce_response, parse_scrape_response, scrape_query_url, scrape_url,
};
use crate::types::{Announce, AnnounceResponse, InfoHash, ScrapeStats};

/// Limits of the HTTP client.
#[derive(Clone, Debug)]
pub struct HttpClientConfig {
    /// Whole-exchange timeout (default 15 s).
    pub timeout: Duration,
    /// Most bytes read (head and body, default 1 MiB).
    pub max_response: usize,
    /// TLS settings for `https://` (default: Mozilla's roots; see
    /// [`client_config`](super::client_config) to trust another CA).
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            timeout: Duration::from_secs(15),
            max_response: 1 << 20,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Announce to an HTTP tracker with default limits.
pub async fn http_announce(announce: &str, a: &Announce) -> Result<AnnounceResponse, TrackerError> {
    http_announce_with(announce, a, &HttpClientConfig::default()).await
}

/// Announce to an HTTP tracker.
pub async fn http_announce_with(
    announce: &str,
    a: &Announce,
    config: &HttpClientConfig,
) -> Result<AnnounceResponse, TrackerError> {
    let (status, body) = http_get(&announce_url(announce, a), config).await?;
    match parse_announce_response(&body) {
        Ok(r) => Ok(r),
        Err(e @ crate::http::HttpResponseError::Failure(_)) => Err(e.into()),
        Err(_) if status != 200 => Err(TrackerError::HttpStatus(status)),
        Err(e) => Err(e.into()),
    }
}

/// Scrape an HTTP tracker (BEP 48), given its announce URL.
pub async fn http_scrape(
    announce: &str,
    hashes: &[InfoHash],
) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
    http_scrape_with(announce, hashes, &HttpClientConfig::default()).await
}

/// [`http_scrape`] with explicit limits and TLS settings.
pub async fn http_scrape_with(
    announce: &str,
    hashes: &[InfoHash],
    config: &HttpClientConfig,
) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
    let base = scrape_url(announce).ok_or_else(|| TrackerError::BadUrl {
        url: announce.to_owned(),
        why: "no scrape URL (last path segment does not start with \"announce\")",
    })?;
    let (status, body) = http_get(&scrape_query_url(&base, hashes), config).await?;
    match parse_scrape_response(&body) {
        Ok(r) => Ok(r),
        Err(_) if status != 200 => Err(TrackerError::HttpStatus(status)),
        Err(e) => Err(e.into()),
    }
}

/// `GET url` and return the status and the (de-chunked) body.
pub async fn http_get(
    url: &str,
    config: &HttpClientConfig,
) -> Result<(u16, Vec<u8>), TrackerError> {
    let bad = |why| TrackerError::BadUrl {
        url: url.to_owned(),
        why,
    };
    let u = url::Url::parse(url).map_err(|_| bad("does not parse"))?;
    let https = match u.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(bad("only http:// and https:// are supported")),
    };
    let host = u.host_str().ok_or_else(|| bad("no host"))?.to_owned();
    let port = u.port_or_known_default().unwrap_or(80);
    let target = &url::Position::BeforePath;
    let path = &u[*target..url::Position::AfterQuery];
    let host_header = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: rivulet-tracker/0.1\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    let connect_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let exchange = async {
        let tcp = TcpStream::connect((connect_host.as_str(), port)).await?;
        let mut s: Box<dyn Io> = if https {
            #[cfg(feature = "tls")]
            {
                Box::new(super::tls::connect(tcp, &connect_host, config.tls.as_ref()).await?)
            }
            #[cfg(not(feature = "tls"))]
            {
                drop(tcp);
                return Err(TrackerError::Tls("built without the tls feature".into()));
            }
        } else {
            Box::new(tcp)
        };
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            if buf.len() + n > config.max_response {
                return Err(TrackerError::HttpProtocol(format!(
                    "response larger than {} bytes",
                    config.max_response
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(done) = complete_len(&buf) {
                buf.truncate(done);
                break;
            }
        }
        Ok(buf)
    };
    let raw = tokio::time::timeout(config.timeout, exchange)
        .await
        .map_err(|_| TrackerError::TimedOut)??;
    parse_response(&raw)
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// If a Content-Length response is complete, its total length.
fn complete_len(buf: &[u8]) -> Option<usize> {
    let end = head_end(buf)?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len: usize = header(head, "content-length")?.parse().ok()?;
    (buf.len() >= end + len).then_some(end + len)
}

fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), TrackerError> {
    let bad = |s: &str| TrackerError::HttpProtocol(s.to_owned());
    let end = head_end(raw).ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status code"))?;
    let body = &raw[end..];
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Ok((
            status,
            dechunk(body).ok_or_else(|| bad("bad chunked body"))?,
        ));
    }
    let body = match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n <= body.len() => &body[..n],
        Some(_) => return Err(bad("body shorter than Content-Length")),
        None => body,
    };
    Ok((status, body.to_vec()))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&b[..line_end]).ok()?;
        let size_str = size_str.split(';').next()?.trim();
        let size = usize::from_str_radix(size_str, 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_lengths() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r, (200, b"abcde".to_vec()));
        let r = parse_response(b"HTTP/1.0 404 No\r\nContent-Length: 2\r\n\r\nxyz").unwrap();
        assert_eq!(r, (404, b"xy".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nxyz").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert!(dechunk(b"zz\r\n").is_none());
    }
}
