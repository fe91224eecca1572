//! The [`Handshaker`] trait: where discovered peers become connections.

use std::future::Future;

/// Turns peer contacts into established, identified connections.
///
/// Discovery services (trackers, the DHT, local discovery, PEX, a WebRTC signalling
/// channel) find peers and forward their contact information to a handshaker; the
/// handshaker connects (over whatever transport the contact names), runs its handshake,
/// and yields a connection whose remote side is identified. Clients plug in their own
/// implementation — a different protocol, a different transport, extra authentication —
/// and the crate ships the standard BitTorrent one, [`BtHandshaker`](crate::BtHandshaker)
/// (feature `tokio`). [`spawn_handshaker`](crate::spawn_handshaker) runs any
/// handshaker behind a channel that discovery services feed.
///
/// The trait knows nothing about torrents, so other applications can reuse the
/// discovery plumbing. Here a chat application greets peers with its own one-line
/// handshake:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use std::net::SocketAddr;
/// use rivulet_handshake::Handshaker;
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
/// use tokio::net::TcpStream;
///
/// /// Says "HELLO <name>" and expects the same back.
/// struct ChatHello { name: String }
///
/// struct ChatPeer { name: String, stream: BufReader<TcpStream> }
///
/// impl Handshaker for ChatHello {
///     type Contact = SocketAddr;
///     type Connection = ChatPeer;
///     type Error = std::io::Error;
///     async fn handshake(&self, addr: SocketAddr) -> std::io::Result<ChatPeer> {
///         let mut tcp = TcpStream::connect(addr).await?;
///         tcp.write_all(format!("HELLO {}\n", self.name).as_bytes()).await?;
///         let mut stream = BufReader::new(tcp);
///         let mut line = String::new();
///         stream.read_line(&mut line).await?;
///         let name = line.trim_end().strip_prefix("HELLO ")
///             .ok_or_else(|| std::io::Error::other("not a chat peer"))?
///             .to_string();
///         Ok(ChatPeer { name, stream })
///     }
/// }
///
/// // A peer to talk to, on loopback.
/// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = server.local_addr()?;
/// tokio::spawn(async move {
///     let (mut s, _) = server.accept().await.unwrap();
///     s.write_all(b"HELLO bob\n").await.unwrap();
///     let mut line = String::new();
///     BufReader::new(s).read_line(&mut line).await.unwrap();
/// });
///
/// // A discovery service would feed contacts here.
/// let (contacts, mut connections) = rivulet_handshake::spawn_handshaker(ChatHello { name: "alice".into() }, 4);
/// contacts.send(addr).await.unwrap();
/// let peer = connections.recv().await.unwrap()?;
/// assert_eq!(peer.name, "bob");
/// # Ok(()) }
/// ```
pub trait Handshaker: Send + Sync + 'static {
    /// What discovery hands over: an address, plus whatever the handshake needs.
    type Contact: Send + 'static;
    /// An established, identified connection.
    type Connection: Send + 'static;
    /// Why a handshake failed.
    type Error: Send + 'static;

    /// Connects to `contact` and runs the handshake.
    fn handshake(
        &self,
        contact: Self::Contact,
    ) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;
}
