"""A libtorrent peer on loopback for rivulet's magnet and PEX interop tests.

usage: lt_magnet.py seed|leech TORRENT SAVE_PATH
       lt_magnet.py magnet MAGNET_URI SAVE_PATH
  seed:   checks the data under SAVE_PATH and seeds it.
  leech:  downloads the torrent into SAVE_PATH.
  magnet: adds the magnet link (its x.pe peers are dialed) and downloads into SAVE_PATH.
Listens on 127.0.0.1 (DHT, LSD, UPnP, NAT-PMP off; redundant seed-to-seed connections
kept, and several peers per IP since all are 127.0.0.1), prints "PORT <n>" and "READY", then
"METADATA" when the metadata is there and "DONE" when it has every piece (magnet),
and "PEER <client>" once for every distinct client name it is connected to. A line
"connect <port>" on stdin makes it dial 127.0.0.1:<port>. Runs until stdin closes.
"""
import sys
import threading
import time
import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)

mode, what, save_path = sys.argv[1], sys.argv[2], sys.argv[3]
settings = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "close_redundant_connections": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": 0,
}
ses = lt.session(settings)
if mode in ("seed", "leech"):
    h = ses.add_torrent({"ti": lt.torrent_info(what), "save_path": save_path})
    deadline = time.time() + 30
    # A seed once it seeds; a leech once it is past checking (a peer to dial given
    # earlier waits for libtorrent's next connect round, ~15 s).
    started = (lt.torrent_status.seeding,) if mode == "seed" else (
        lt.torrent_status.downloading, lt.torrent_status.seeding)
    while h.status().state not in started:
        if time.time() > deadline:
            sys.exit("libtorrent did not start: " + str(h.status().state))
        time.sleep(0.05)
else:
    params = lt.parse_magnet_uri(what)
    params.save_path = save_path
    h = ses.add_torrent(params)
deadline = time.time() + 10
while ses.listen_port() == 0 and time.time() < deadline:
    time.sleep(0.05)
print("PORT", ses.listen_port())
print("READY", flush=True)

stop = threading.Event()


def watch():
    seen = set()
    said_metadata = said_done = False
    while not stop.is_set():
        st = h.status()
        if mode == "magnet" and st.has_metadata and not said_metadata:
            said_metadata = True
            print("METADATA", flush=True)
        if mode == "magnet" and st.is_seeding and not said_done:
            said_done = True
            print("DONE", flush=True)
        for p in h.get_peer_info():
            client = p.client.decode("utf-8", "replace") if isinstance(p.client, bytes) else p.client
            if client not in seen:
                seen.add(client)
                print("PEER", client, flush=True)
        time.sleep(0.02)


threading.Thread(target=watch, daemon=True).start()
for line in sys.stdin:
    cmd = line.split()
    if cmd and cmd[0] == "connect":
        h.connect_peer(("127.0.0.1", int(cmd[1])))
stop.set()
