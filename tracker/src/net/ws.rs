//! WebSocket tracker drivers: the server side (upgraded from the HTTP listener, as the npm
//! tracker does) and a client, [`WsTracker`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::TrackerError;
use crate::server::Swarms;
use crate::ws::{ClientMessage, ConnId, MAX_MESSAGE, ServerMessage, WsDecodeError, WsRelay};

/// Messages queued for one slow WebSocket client before further ones are dropped.
const OUTBOX: usize = 64;

/// State shared by every WebSocket connection of a server. Locks are taken in the order
/// `relay`, `swarms`, `conns`.
#[derive(Debug)]
pub(crate) struct WsShared {
    relay: Mutex<WsRelay>,
    swarms: Arc<Mutex<Swarms>>,
    conns: Mutex<HashMap<ConnId, mpsc::Sender<String>>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WsShared {
    pub(crate) fn new(swarms: Arc<Mutex<Swarms>>) -> Self {
        WsShared {
            relay: Mutex::new(WsRelay::new()),
            swarms,
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Expire peers of every front end, then forget the relay's stale entries.
    pub(crate) fn expire(&self, now: Instant) {
        let mut relay = lock(&self.relay);
        let mut swarms = lock(&self.swarms);
        swarms.expire(now);
        relay.prune(&swarms);
    }

    /// Hand every queued relay message to its connection's writer.
    fn flush(&self, relay: &mut WsRelay) {
        let conns = lock(&self.conns);
        while let Some((to, msg)) = relay.poll_transmit() {
            if let Some(tx) = conns.get(&to) {
                // A full outbox means a client that does not read: drop, it will re-announce.
                let _ = tx.try_send(msg.encode());
            }
        }
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 section 4.2.2).
fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&h.finalize())
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// If `head` is a WebSocket upgrade request, its `Sec-WebSocket-Key`.
pub(crate) fn upgrade_key(head: &str) -> Option<&str> {
    let mut upgrade = false;
    let mut key = None;
    for l in head.lines().skip(1) {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let k = k.trim();
        if k.eq_ignore_ascii_case("upgrade") && v.trim().eq_ignore_ascii_case("websocket") {
            upgrade = true;
        } else if k.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(v.trim());
        }
    }
    if upgrade { key } else { None }
}

/// Finish the upgrade of an HTTP connection and serve it until it closes. `rest` holds any
/// bytes read after the request head.
pub(crate) async fn serve_upgraded<S: Io + 'static>(
    mut stream: S,
    from: std::net::SocketAddr,
    key: &str,
    rest: Vec<u8>,
    shared: Arc<WsShared>,
) -> std::io::Result<()> {
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    stream.write_all(resp.as_bytes()).await?;
    let ws =
        WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(ws_config())).await;
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOX);
    let id = ConnId(shared.next.fetch_add(1, Ordering::Relaxed));
    lock(&shared.conns).insert(id, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(Message::text(m)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(msg) = source.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        match ClientMessage::decode(text.as_str()) {
            Ok(m) => {
                let now = Instant::now();
                let mut relay = lock(&shared.relay);
                let mut swarms = lock(&shared.swarms);
                if swarms.check_rate(now, from.ip()) {
                    relay.handle_message(&mut swarms, now, id, m);
                    drop(swarms);
                    shared.flush(&mut relay);
                } else {
                    drop((swarms, relay));
                    let _ = tx.try_send(
                        ServerMessage::Failure {
                            info_hash: None,
                            reason: super::server::RATE_LIMITED.into(),
                        }
                        .encode(),
                    );
                }
            }
            Err(e) => {
                let _ = tx.try_send(
                    ServerMessage::Failure {
                        info_hash: None,
                        reason: format!("invalid message: {e}"),
                    }
                    .encode(),
                );
            }
        }
    }
    lock(&shared.conns).remove(&id);
    lock(&shared.relay).handle_disconnect(&mut lock(&shared.swarms), id);
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// A byte stream a WebSocket runs over: plain TCP or TLS.
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A client connection to a WebSocket tracker (`ws://`, and `wss://` with the `tls`
/// feature). One connection serves every swarm; messages for all of them arrive through
/// [`recv`](Self::recv).
pub struct WsTracker {
    ws: WebSocketStream<Box<dyn Io>>,
}

impl std::fmt::Debug for WsTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTracker").finish_non_exhaustive()
    }
}

impl WsTracker {
    /// Open the WebSocket (`wss://` trusts Mozilla's roots).
    pub async fn connect(url: &str) -> Result<Self, TrackerError> {
        Self::connect_with(url, None).await
    }

    /// Open the WebSocket; `wss://` uses `tls` if given (see
    /// [`client_config`](super::client_config) to trust another CA).
    pub async fn connect_with(
        url: &str,
        #[cfg(feature = "tls")] tls: Option<Arc<rustls::ClientConfig>>,
        #[cfg(not(feature = "tls"))] tls: Option<()>,
    ) -> Result<Self, TrackerError> {
        let bad = |why| TrackerError::BadUrl {
            url: url.to_owned(),
            why,
        };
        let u = url::Url::parse(url).map_err(|_| bad("does not parse"))?;
        let secure = match u.scheme() {
            "ws" => false,
            "wss" => true,
            _ => return Err(bad("only ws:// and wss:// are supported")),
        };
        let host = u
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = u.port_or_known_default().unwrap_or(80);
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if secure {
            #[cfg(feature = "tls")]
            {
                Box::new(super::tls::connect(tcp, &host, tls.as_ref()).await?)
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = (tcp, tls);
                return Err(TrackerError::Tls("built without the tls feature".into()));
            }
        } else {
            let _ = &tls;
            Box::new(tcp)
        };
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
            .await
            .map_err(|e| TrackerError::HttpProtocol(format!("websocket: {e}")))?;
        Ok(WsTracker { ws })
    }

    /// Send an announce, answer or scrape.
    pub async fn send(&mut self, msg: &ClientMessage) -> Result<(), TrackerError> {
        self.ws
            .send(Message::text(msg.encode()))
            .await
            .map_err(|e| TrackerError::HttpProtocol(format!("websocket: {e}")))
    }

    /// The next message from the tracker; `None` when the connection closed. A message that
    /// does not decode is returned as an error and the connection stays usable.
    pub async fn recv(&mut self) -> Option<Result<ServerMessage, WsDecodeError>> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => return Some(ServerMessage::decode(t.as_str())),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Close the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
