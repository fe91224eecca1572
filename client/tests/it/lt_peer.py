"""A libtorrent peer on loopback for rivulet's client interop tests.

usage: lt_peer.py seed|leech TORRENT SAVE_PATH ENC_POLICY
  seed:  checks the data under SAVE_PATH and seeds it.
  leech: downloads into SAVE_PATH.
  ENC_POLICY: libtorrent's in/out_enc_policy (0 forced, 1 enabled, 2 disabled).
Listens on 127.0.0.1 (DHT, LSD, UPnP, NAT-PMP off), prints "PORT <n>" and "READY" (a
seed once it is seeding), then "DONE" when a leech has every piece on disk. A line
"connect <port>" on stdin makes it dial 127.0.0.1:<port>; "status" prints "PIECES <n>",
the number of pieces it has verified. Runs until stdin closes.
Adapted from handshake/tests/it/lt_seed.py.
"""
import sys
import threading
import time
import warnings

import os

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)

mode, torrent, save_path, policy = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False,
    "enable_lsd": os.environ.get("LT_LSD") == "1",
    "enable_upnp": False,
    "enable_natpmp": False,
    "in_enc_policy": policy,
    "out_enc_policy": policy,
    "allowed_enc_level": lt.enc_level.rc4 if policy == 0 else lt.enc_level.both,
    "prefer_rc4": policy == 0,
    # Only the storage alerts: cache_flushed_alert (see watch()).
    "alert_mask": lt.alert.category_t.storage_notification,
}
ses = lt.session(settings)
ti = lt.torrent_info(torrent)
h = ses.add_torrent({"ti": ti, "save_path": save_path})
if mode == "seed":
    deadline = time.time() + 30
    while not h.status().is_seeding:
        if time.time() > deadline:
            sys.exit("libtorrent did not start seeding: " + str(h.status().state))
        time.sleep(0.05)
deadline = time.time() + 10
while ses.listen_port() == 0 and time.time() < deadline:
    time.sleep(0.05)
print("PORT", ses.listen_port())
print("READY", flush=True)

stop = threading.Event()


def flushed():
    """Waits until libtorrent has written every block it has verified.

    is_seeding turns true once every piece passed its hash check, and libtorrent hashes
    blocks from its store buffer while their disk writes are still queued: at that
    moment a file can be missing or short. flush_cache() is a fence after those writes
    and posts cache_flushed_alert when they are done."""
    h.flush_cache()
    deadline = time.time() + 30
    while time.time() < deadline:
        if any(isinstance(a, lt.cache_flushed_alert) for a in ses.pop_alerts()):
            return True
        ses.wait_for_alert(100)
    return False


def watch():
    while not stop.is_set():
        if mode == "leech" and h.status().is_seeding:
            if not flushed():
                sys.stderr.write("no cache_flushed_alert in 30 s\n")
            print("DONE", flush=True)
            return
        time.sleep(0.05)


threading.Thread(target=watch, daemon=True).start()
for line in sys.stdin:
    cmd = line.split()
    if cmd and cmd[0] == "connect":
        h.connect_peer(("127.0.0.1", int(cmd[1])))
    elif cmd and cmd[0] == "status":
        print("PIECES", h.status().num_pieces, flush=True)
stop.set()
