"""libtorrent helper for rivulet-metainfo's interop tests.

Usage (prints one JSON object on stdout):
  info   TORRENT                       -> {"v1": hex|null, "v2": hex|null, "num_pieces": n,
                                            "piece_length": n, "total_size": n, "files": [[path, size, pad]...]}
  create PATH PIECE_LEN v1|v2|hybrid OUT -> libtorrent makes OUT from PATH; prints the same as info
  check  TORRENT SAVE_PATH             -> adds the torrent with SAVE_PATH, waits for the hash
                                            check; {"state": str, "seeding": bool, "have": [bool...]}
"""
import json
import os
import sys
import time
import warnings

warnings.simplefilter("ignore")

import libtorrent as lt


def hashes(ti):
    ih = ti.info_hashes()
    v1 = str(ih.v1) if ih.has_v1() else None
    v2 = str(ih.v2) if ih.has_v2() else None
    return v1, v2


def describe(ti):
    v1, v2 = hashes(ti)
    fs = ti.files()
    files = [[fs.file_path(i), fs.file_size(i), bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)] for i in range(fs.num_files())]
    return {
        "v1": v1,
        "v2": v2,
        "num_pieces": ti.num_pieces(),
        "piece_length": ti.piece_length(),
        "total_size": ti.total_size(),
        "name": ti.name(),
        "files": files,
    }


def cmd_info(path):
    ti = lt.torrent_info(path)
    print(json.dumps(describe(ti)))


def cmd_create(path, piece_len, version, out):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[version]
    ct = lt.create_torrent(fs, int(piece_len), flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    data = lt.bencode(ct.generate())
    with open(out, "wb") as f:
        f.write(data)
    cmd_info(out)


def cmd_check(torrent, save_path):
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": 0,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)
    done_states = (lt.torrent_status.seeding, lt.torrent_status.finished, lt.torrent_status.downloading)
    deadline = time.time() + 120
    while time.time() < deadline:
        st = h.status()
        if st.state in done_states and not st.errc.value():
            break
        if st.errc.value():
            break
        time.sleep(0.05)
    st = h.status()
    have = [bool(b) for b in st.pieces]
    print(json.dumps({
        "state": str(st.state),
        "seeding": st.state == lt.torrent_status.seeding or st.is_seeding,
        "have": have,
        "error": st.errc.message() if st.errc.value() else None,
    }))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"info": cmd_info, "create": cmd_create, "check": cmd_check}[cmd](*args)


if __name__ == "__main__":
    main()
