"""A libtorrent 2.1.1 node for the swarm benchmark (client/benches/swarm/swarm.py).

usage: lt_node.py seed|leech|leech-dq TORRENT SAVE_PATH
       lt_node.py seed-many LIST            (LIST: lines "TORRENT<TAB>SAVE_PATH")

Settings: libtorrent's own high-performance preset (`high_performance_seed()`), on both
sides, plus what anyone benchmarking on loopback turns off: uTP (libtorrent dials uTP
first; over loopback it runs at ~10 MB/s, and rivulet speaks TCP only), DHT, LSD, UPnP,
NAT-PMP and protocol encryption (in/out_enc_policy disabled; rivulet runs with
`--encryption disabled` too). Loopback peers are in libtorrent's unlimited "local" peer
class, so no rate limit applies. `seed-many` uses the default settings (what a user
running many torrents gets), with every torrent added as not auto-managed so all of
them seed (the default `active_seeds` would queue all but 5).

`leech-dq` is a leech with libtorrent's default `max_queued_disk_bytes` (100 MiB)
instead of the preset's 7 MiB: fed at full speed over loopback, a leech that reaches
that limit stops reading its sockets until its disk threads catch up, and the preset's
limit is reached often by a seed that sends 1 MiB per call (rivulet's mapped uploads).

Prints "PORT <n>" and "READY" once listening (and seeding, for seed modes). A leech
prints "DONE" once it has every piece. A line "connect <port>" on stdin makes it dial
127.0.0.1:<port>. Runs until stdin closes.
"""
import sys
import threading
import time
import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)

mode = sys.argv[1]
base = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "in_enc_policy": 2,
    "out_enc_policy": 2,
    "alert_mask": 0,
    # TCP only: libtorrent dials uTP first, and uTP on loopback runs at ~10 MB/s.
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
}
import os

if mode == "seed-many" or os.environ.get("LT_PRESET") == "default":
    settings = base
else:
    settings = dict(lt.high_performance_seed())
    settings.update(base)
if mode.startswith("leech"):
    # Only the storage alerts: cache_flushed_alert (see watch()).
    settings["alert_mask"] = lt.alert.category_t.storage_notification
if mode == "leech-dq":
    settings["max_queued_disk_bytes"] = lt.default_settings()["max_queued_disk_bytes"]
    mode = "leech"
ses = lt.session(settings)


def add(torrent, save_path):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(atp)


if mode == "seed-many":
    handles = []
    with open(sys.argv[2]) as f:
        for line in f:
            t, p = line.rstrip("\n").split("\t")
            handles.append(add(t, p))
else:
    handles = [add(sys.argv[2], sys.argv[3])]

if mode != "leech":
    deadline = time.time() + 300
    while not all(h.status().is_seeding for h in handles):
        if time.time() > deadline:
            sys.exit("libtorrent did not start seeding")
        time.sleep(0.05)
deadline = time.time() + 10
while ses.listen_port() == 0 and time.time() < deadline:
    time.sleep(0.05)
print("PORT", ses.listen_port())
print("READY", flush=True)

stop = threading.Event()


def flushed():
    """Waits until libtorrent has written every block it has verified: is_seeding turns
    true once every piece passed its hash check, and libtorrent hashes blocks from its
    store buffer while their writes may still be queued (the verify after DONE once
    found a file that differed). flush_cache() is a fence after those writes and posts
    cache_flushed_alert when they are done. A rivulet leech's time includes its own
    flush too (it exits after writing everything out)."""
    handles[0].flush_cache()
    deadline = time.time() + 30
    while time.time() < deadline:
        if any(isinstance(a, lt.cache_flushed_alert) for a in ses.pop_alerts()):
            return True
        ses.wait_for_alert(100)
    return False


def watch():
    h = handles[0]
    while not stop.is_set():
        if h.status().is_seeding:
            if not flushed():
                sys.stderr.write("no cache_flushed_alert in 30 s\n")
            print("DONE", flush=True)
            return
        time.sleep(0.01)


if mode == "leech":
    threading.Thread(target=watch, daemon=True).start()
for line in sys.stdin:
    cmd = line.split()
    if cmd and cmd[0] == "connect":
        handles[0].connect_peer(("127.0.0.1", int(cmd[1])))
stop.set()
