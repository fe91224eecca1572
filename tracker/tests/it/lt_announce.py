"""Announce one info hash to one tracker with libtorrent, then leave.

    python lt_announce.py <tracker-url> <info-hash-hex> <listen-port>

Prints one JSON line: {"replies": [...num_peers...], "errors": [...], "stopped": bool}.
"""
import json
import sys
import time

import libtorrent as lt

url, ih_hex, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ses = lt.session({
    "listen_interfaces": f"127.0.0.1:{port}",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "alert_mask": lt.alert.category_t.all_categories,
    "announce_to_all_trackers": True,
    # The https:// test tracker has a certificate from a test CA libtorrent does not know.
    "validate_https_trackers": False,
})
atp = lt.add_torrent_params()
atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(ih_hex)))
atp.save_path = "."
atp.trackers = [url]
atp.flags &= ~lt.torrent_flags.auto_managed
atp.flags &= ~lt.torrent_flags.paused
h = ses.add_torrent(atp)
out = {"replies": [], "errors": [], "stopped": False}


def pump(until, cond):
    while time.time() < until:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.tracker_reply_alert):
                out["replies"].append(a.num_peers)
            elif isinstance(a, (lt.tracker_error_alert, lt.tracker_warning_alert)):
                out["errors"].append(a.message())
            elif isinstance(a, lt.torrent_removed_alert):
                out["stopped"] = True
        if cond():
            return


pump(time.time() + 15, lambda: out["replies"] or len(out["errors"]) > 3)
ses.remove_torrent(h)
pump(time.time() + 5, lambda: out["stopped"])
# Give the `stopped` announce time to leave before the session goes away.
time.sleep(1.0)
del ses
print(json.dumps(out))
