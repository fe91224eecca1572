"""libtorrent's DHT, bootstrapped only from a rivulet node on loopback, looks up peers.

usage: python libtorrent_get_peers.py <bootstrap host:port> <info hash hex> <expected peer> <timeout s>
prints one JSON line: {"found": bool, "peers": [...], "dht_nodes": n}
"""
import json
import sys
import time

import libtorrent as lt

bootstrap, info_hash, expected, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": True,
    "dht_bootstrap_nodes": bootstrap,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    # Every node is on 127.0.0.1: allow several per IP, and loopback at all.
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_ignore_dark_internet": False,
    "alert_mask": lt.alert_category.all,
})
target = lt.sha1_hash(bytes.fromhex(info_hash))
peers = set()
nodes = 0
deadline = time.time() + timeout
next_query = 0.0
while time.time() < deadline and expected not in peers:
    if time.time() >= next_query:
        ses.dht_get_peers(target)
        next_query = time.time() + 2.0
    ses.wait_for_alert(500)
    for a in ses.pop_alerts():
        if isinstance(a, lt.dht_get_peers_reply_alert):
            for p in a.peers():
                peers.add("%s:%d" % (p[0], p[1]))
        elif isinstance(a, lt.dht_stats_alert):
            nodes = sum(b["num_nodes"] for b in a.routing_table) if hasattr(a, "routing_table") else nodes
    ses.post_dht_stats()
print(json.dumps({"found": expected in peers, "peers": sorted(peers), "dht_nodes": nodes}), flush=True)
