"""A libtorrent seed on loopback for rivulet's interop tests.

usage: lt_seed.py WORKDIR ENC_POLICY
  ENC_POLICY: libtorrent's in/out_enc_policy (0 forced, 1 enabled, 2 disabled); with 0
  only RC4 is allowed.
Creates WORKDIR/content.bin (256 KiB + 1000 bytes, byte i = (i * 7 + 3) % 251), a v1
torrent with 32 KiB pieces, seeds it on 127.0.0.1 (DHT, LSD, UPnP, NAT-PMP off), prints
"PORT <n>", "INFOHASH <hex>" and "READY", and runs until its stdin closes. A line
"connect <port>" on stdin makes it dial 127.0.0.1:<port>.
"""
import os
import sys
import time

import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)

workdir, policy = sys.argv[1], int(sys.argv[2])
size = 256 * 1024 + 1000
with open(os.path.join(workdir, "content.bin"), "wb") as f:
    f.write(bytes((i * 7 + 3) % 251 for i in range(size)))

fs = lt.file_storage()
lt.add_files(fs, os.path.join(workdir, "content.bin"))
ct = lt.create_torrent(fs, 32 * 1024, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, workdir)
ti = lt.torrent_info(lt.bencode(ct.generate()))

settings = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "in_enc_policy": policy,
    "out_enc_policy": policy,
    "allowed_enc_level": lt.enc_level.rc4 if policy == 0 else lt.enc_level.both,
    "prefer_rc4": policy == 0,
    "alert_mask": 0,
}
ses = lt.session(settings)
h = ses.add_torrent({"ti": ti, "save_path": workdir})
deadline = time.time() + 30
while not h.status().is_seeding:
    if time.time() > deadline:
        sys.exit("libtorrent did not start seeding")
    time.sleep(0.05)
deadline = time.time() + 10
while ses.listen_port() == 0 and time.time() < deadline:
    time.sleep(0.05)

print("PORT", ses.listen_port())
print("INFOHASH", str(ti.info_hashes().v1))
print("READY", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd and cmd[0] == "connect":
        h.connect_peer(("127.0.0.1", int(cmd[1])))
