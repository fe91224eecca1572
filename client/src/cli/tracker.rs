//! `rivulet tracker [--http ADDR] [--udp ADDR] [--ws ADDR] [--tls-cert PEM --tls-key PEM]
//! [--rate-limit N] [--allow FILE]`: the tracker server of the tracker crate, one swarm state
//! behind every front end.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tracker::net::{Listen, TrackerServer};
use tracker::server::ServerConfig;

use super::CliError;

/// Arguments of `rivulet tracker`.
#[derive(Args)]
pub(crate) struct TrackerArgs {
    /// HTTP announce/scrape (BEP 3, BEP 48); the WebSocket tracker shares this port.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// UDP tracker (BEP 15).
    #[arg(long)]
    udp: Option<SocketAddr>,
    /// WebSocket (WebTorrent) tracker. It is served on the HTTP port: give the same
    /// address as --http, or --ws alone (HTTP is then served there too).
    #[arg(long)]
    ws: Option<SocketAddr>,
    /// TLS certificate chain (PEM, leaf first) for the HTTP/WebSocket listener: it then
    /// serves https:// and wss://. Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Requests per second allowed per source IP, over UDP, HTTP and WebSocket alike
    /// (bursts of twice that); more are dropped (UDP) or refused (default: no limit).
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Private tracker: a file of allowed info hashes, 40 hex digits per line; others are
    /// refused.
    #[arg(long)]
    allow: Option<std::path::PathBuf>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    timeout: Option<u64>,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))
}

fn config(a: &TrackerArgs) -> Result<ServerConfig, CliError> {
    let mut config = ServerConfig::default();
    if let Some(r) = a.rate_limit {
        if !(r.is_finite() && r > 0.0) {
            return Err(CliError::BadInput(format!(
                "--rate-limit {r}: give a positive number of requests per second"
            )));
        }
        config.rate_limit = Some(tracker::server::RateLimit::per_second(r));
    }
    if let Some(path) = &a.allow {
        let text = String::from_utf8(read(path)?)
            .map_err(|_| CliError::BadInput(format!("{}: not UTF-8", path.display())))?;
        let mut allowed = std::collections::HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let hash = (line.len() == 40)
                .then(|| {
                    let mut b = [0u8; 20];
                    for (i, out) in b.iter_mut().enumerate() {
                        *out = u8::from_str_radix(line.get(2 * i..2 * i + 2)?, 16).ok()?;
                    }
                    Some(tracker::InfoHash(b))
                })
                .flatten()
                .ok_or_else(|| {
                    CliError::BadInput(format!(
                        "{}:{}: not an info hash (40 hex digits): {line:?}",
                        path.display(),
                        n + 1
                    ))
                })?;
            allowed.insert(hash);
        }
        config.allow_list = Some(allowed);
    }
    Ok(config)
}

/// Runs `rivulet tracker`.
pub(crate) fn run(a: TrackerArgs) -> Result<(), CliError> {
    let http = match (a.http, a.ws) {
        (Some(h), Some(w)) if h != w => {
            return Err(CliError::BadInput(format!(
                "--ws {w}: the WebSocket tracker is served on the HTTP port; use --ws {h} or drop --http"
            )));
        }
        (h, w) => h.or(w),
    };
    if http.is_none() && a.udp.is_none() {
        return Err(CliError::BadInput(
            "give at least one of --http, --udp, --ws".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io(format!("starting the async runtime: {e}")))?;
    let config = config(&a)?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(
            tracker::net::server_config(&read(c)?, &read(k)?)
                .map_err(|e| CliError::BadInput(format!("--tls-cert/--tls-key: {e}")))?,
        ),
        _ => None,
    };
    rt.block_on(async move {
        let listen = Listen { udp: a.udp, http };
        let server = match tls {
            Some(tls) => TrackerServer::bind_tls(config, listen, tls).await,
            None => TrackerServer::bind(config, listen).await,
        }
        .map_err(|e| CliError::Io(format!("binding the tracker: {e}")))?;
        if let Some(u) = server.udp_addr() {
            println!("udp://{u}/announce");
        }
        if let (Some(h), Some(w)) = (server.http_url(), server.ws_url()) {
            println!("{h}");
            println!("{w}");
        }
        match a.timeout {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        drop(server);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(allow: Option<std::path::PathBuf>, rate: Option<f64>) -> TrackerArgs {
        TrackerArgs {
            http: None,
            udp: None,
            ws: None,
            tls_cert: None,
            tls_key: None,
            rate_limit: rate,
            allow,
            timeout: None,
        }
    }

    #[test]
    fn allow_list_file_and_rate_limit() {
        let dir = std::env::temp_dir().join(format!("rivulet-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allow.txt");
        std::fs::write(
            &file,
            format!("# private\n{}\n\n{}\n", "ab".repeat(20), "0F".repeat(20)),
        )
        .unwrap();
        let c = config(&args(Some(file.clone()), Some(5.0))).unwrap();
        let allow = c.allow_list.unwrap();
        assert!(allow.contains(&tracker::InfoHash([0xab; 20])));
        assert!(allow.contains(&tracker::InfoHash([0x0f; 20])));
        assert_eq!(allow.len(), 2);
        assert_eq!(c.rate_limit.unwrap().burst, 10);
        std::fs::write(&file, "abc\n").unwrap();
        assert!(matches!(
            config(&args(Some(file), None)),
            Err(CliError::BadInput(_))
        ));
        assert!(config(&args(None, Some(-1.0))).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
