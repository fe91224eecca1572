"""The swarm benchmark: one seed, one leech, one file on loopback; rivulet and
libtorrent in every pairing, measured in the same run; then the peak RSS of one session
seeding many torrents. Run it through run.sh (which builds rivulet in release).

Per transfer: wall time from the moment the leech is told about the seed (a rivulet
leech: process start; a libtorrent leech: the "connect" command, after its session is
up) to the leech having every piece verified; throughput = size / wall; CPU seconds
(user + system, all threads) of each process over that interval, from /proc/PID/stat,
scaled to one GiB. Every process is a separate OS process (`rivulet seed`,
`rivulet download`, lt_node.py).

The floor pairs (`fl-fl`: sendfile, `fr-fr`: pread + send) run floor.c instead: no
protocol at all, just the copies, the SHA-1 check and the file writes that any client
must do, so they bound what any seed/leech pair can reach on the machine. `fl-fm` and
`fr-fm` are the same with a leech that receives straight into a mapping of the file
(saving the copy into the page cache that a write makes).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import queue

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30
# Floor pairs: (seed mode, leech mode) of floor.c.
FLOOR_PAIRS = {"fl-fl": ("sendfile", "write"), "fr-fr": ("read", "write"),
               "fl-fm": ("sendfile", "mmap"), "fr-fm": ("read", "mmap")}


def cpu_seconds(pid):
    """User + system CPU seconds of a live process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Proc:
    """A child process whose stdout lines arrive on a queue; killed by close()."""

    def __init__(self, args, stdin=True):
        self.args = args
        self.p = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = queue.Queue()
        self.err = []
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def _pump_err(self):
        for line in self.p.stderr:
            self.err.append(line.rstrip("\n"))
            del self.err[:-20]

    def expect(self, prefix, timeout):
        """The first stdout line starting with prefix."""
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                raise RuntimeError(f"{self.args[:2]}: no {prefix!r} in {timeout} s; stderr: {self.err[-5:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.args[:2]} exited ({self.p.wait()}) before {prefix!r}: {self.err[-5:]}")
            if line.startswith(prefix):
                return line

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def make_content(path, size):
    """size bytes of incompressible data (os.urandom), written once and reused."""
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n


class Bench:
    def __init__(self, args):
        self.a = args
        self.rivulet = args.rivulet
        self.py = args.python
        self.lt = os.path.join(HERE, "lt_node.py")

    def seed(self, kind, torrent, src):
        if kind.startswith("rivulet"):
            extra = {"rivulet --uploads read": ["--uploads", "read"],
                     "rivulet --uploads sendfile": ["--uploads", "sendfile"]}.get(kind, [])
            p = Proc([self.rivulet, "seed", torrent, src, "--listen", "127.0.0.1:0",
                      "--encryption", "disabled", "--timeout", "3600", *extra], stdin=False)
            line = p.expect("listening on ", 120)
            return p, int(line.rsplit(":", 1)[1])
        p = Proc([self.py, self.lt, "seed", torrent, src])
        port = int(p.expect("PORT", 120).split()[1])
        p.expect("READY", 10)
        return p, port

    def transfer(self, seed_kind, leech_kind, torrent, src, size):
        dst = tempfile.mkdtemp(prefix="swarm-leech-", dir=self.a.dir)
        seed, port = self.seed(seed_kind, torrent, src)
        leech = None
        try:
            time.sleep(0.3)  # let the seed settle after its own check
            if leech_kind.startswith("libtorrent"):
                mode = "leech" if leech_kind == "libtorrent" else "leech-dq"
                leech = Proc([self.py, self.lt, mode, torrent, dst])
                leech.expect("READY", 60)
                s0, l0 = cpu_seconds(seed.p.pid), cpu_seconds(leech.p.pid)
                t0 = time.perf_counter()
                leech.send(f"connect {port}")
                leech.expect("DONE", self.a.timeout)
                wall = time.perf_counter() - t0
                s1, l1 = cpu_seconds(seed.p.pid), cpu_seconds(leech.p.pid)
            else:
                s0, l0 = cpu_seconds(seed.p.pid), 0.0
                t0 = time.perf_counter()
                leech = Proc([self.rivulet, "download", torrent, "-o", dst, "--peer",
                              f"127.0.0.1:{port}", "--encryption", "disabled", "--json",
                              "--timeout", str(self.a.timeout)], stdin=False)
                # Wait for the exit with its rusage (CPU of all its threads).
                _, status, ru = os.wait4(leech.p.pid, 0)
                wall = time.perf_counter() - t0
                s1 = cpu_seconds(seed.p.pid)
                leech.p.returncode = os.waitstatus_to_exitcode(status)
                if leech.p.returncode != 0:
                    raise RuntimeError(f"rivulet download failed ({leech.p.returncode}): {leech.err[-3:]}")
                l1 = ru.ru_utime + ru.ru_stime
            self.verify(dst, src, torrent)
            gib = size / GIB
            return {
                "pair": f"{seed_kind} -> {leech_kind}",
                "wall": wall,
                "mbps": size / wall / 1e6,
                "seed_cpu": (s1 - s0) / gib,
                "leech_cpu": (l1 - l0) / gib,
            }
        finally:
            if leech:
                leech.close()
            seed.close()
            shutil.rmtree(dst, ignore_errors=True)

    def floor(self, mode, leech_mode, src, size):
        """floor.c: the same bytes, hashes and writes with no protocol (see the docstring)."""
        if not self.a.floor:
            raise RuntimeError("no floor binary (run.sh builds it with cc and OpenSSL headers)")
        dst = tempfile.mkdtemp(prefix="swarm-floor-", dir=self.a.dir)
        try:
            name = os.listdir(src)[0]
            out = subprocess.run([self.a.floor, os.path.join(src, name), os.path.join(dst, name), mode,
                                  leech_mode],
                                 check=True, capture_output=True, text=True, timeout=self.a.timeout).stdout
            self.verify(dst, src, None)
            f = dict(kv.split("=") for kv in out.split()[1:])
            gib = size / GIB
            return {
                "pair": f"floor ({mode}, {leech_mode})",
                "wall": float(f["wall"]),
                "mbps": size / float(f["wall"]) / 1e6,
                "seed_cpu": float(f["seed_cpu"]) / gib,
                "leech_cpu": float(f["leech_cpu"]) / gib,
            }
        finally:
            shutil.rmtree(dst, ignore_errors=True)

    def verify(self, dst, src, torrent):
        """The downloaded file equals the source (size, then sampled bytes + cmp)."""
        name = os.listdir(src)[0]
        a, b = os.path.join(src, name), os.path.join(dst, name)
        if subprocess.run(["cmp", "-s", a, b]).returncode != 0:
            raise RuntimeError(f"{b} differs from {a}")

    def many(self, kind, root, n):
        """Peak RSS (KiB) of one process seeding n torrents, after all are seeding."""
        listing = os.path.join(root, "list.tsv")
        if kind == "rivulet":
            p = Proc([self.a.seed_many, listing], stdin=True)
        else:
            p = Proc([self.py, self.lt, "seed-many", listing])
        try:
            p.expect("READY", 600)
            time.sleep(2)
            return peak_rss_kib(p.p.pid)
        finally:
            p.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rivulet", required=True)
    ap.add_argument("--seed-many", required=True, help="the seed_many example binary")
    ap.add_argument("--python", required=True, help="python with libtorrent 2.1.1")
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--size", type=int, default=GIB)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=180, help="per transfer, seconds")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="skip the untimed first transfer")
    ap.add_argument("--pairs", default="lt-lt,rv-rv,rv-lt,lt-rv,fl-fl",
                    help="lt: libtorrent, rv: rivulet, rs / rr: rivulet seeding with --uploads sendfile / read (seed side only), "
                    "ld: a libtorrent leech with libtorrent's default disk queue (100 MiB) instead of the preset's 7 MiB (leech side only); fl-fl / fr-fr / fl-fm / fr-fm: the floor "
                    "(floor.c; fl: sendfile seed, fr: pread + send seed, fm: leech receiving "
                    "into a mapping of the file)")
    ap.add_argument("--floor", help="the floor.c binary (fl-fl, fr-fr pairs)")
    ap.add_argument("--many", type=int, default=100, help="torrents for the RSS test (0: skip)")
    ap.add_argument("--many-size", type=int, default=4 << 20, help="bytes per torrent")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="swarm-", dir=args.dir)
    bench = Bench(args)
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        make_content(os.path.join(src, "payload.bin"), args.size)
        torrent = os.path.join(work, "payload.torrent")
        subprocess.run([args.rivulet, "create", os.path.join(src, "payload.bin"), "-o", torrent,
                        "--version", "v1"], check=True, stdout=subprocess.DEVNULL)
        names = {"lt": "libtorrent", "rv": "rivulet", "rs": "rivulet --uploads sendfile",
                 "rr": "rivulet --uploads read", "ld": "libtorrent (disk queue 100 MiB)"}
        rows = []
        if args.warmup:
            # Untimed: the first transfer after creating the data pays for fresh memory
            # (the kernel reclaiming page cache for the new tmpfs pages) whoever runs it.
            bench.transfer("rivulet", "rivulet", torrent, src, args.size)
        for r in range(args.rounds):
            for pair in filter(None, args.pairs.split(",")):
                s, l = pair.split("-")
                if pair in FLOOR_PAIRS:
                    if not args.floor:
                        print(f"  SKIP {pair}: floor.c not built (needs cc and OpenSSL headers)",
                              file=sys.stderr, flush=True)
                        continue
                    row = bench.floor(*FLOOR_PAIRS[pair], src, args.size)
                else:
                    row = bench.transfer(names[s], names[l], torrent, src, args.size)
                row["round"] = r + 1
                rows.append(row)
                print(f"  round {r + 1} {row['pair']:<24} {row['wall']:6.2f} s {row['mbps']:7.0f} MB/s",
                      file=sys.stderr, flush=True)
        rss = {}
        if args.many:
            root = os.path.join(work, "many")
            os.makedirs(root)
            with open(os.path.join(root, "list.tsv"), "w") as lst:
                for i in range(args.many):
                    d = os.path.join(root, f"d{i:03}")
                    os.makedirs(d)
                    f = os.path.join(d, f"file{i:03}.bin")
                    make_content(f, args.many_size)
                    t = os.path.join(root, f"t{i:03}.torrent")
                    subprocess.run([args.rivulet, "create", f, "-o", t, "--version", "v1"],
                                   check=True, stdout=subprocess.DEVNULL)
                    lst.write(f"{t}\t{d}\n")
            for kind in ("rivulet", "libtorrent"):
                rss[kind] = bench.many(kind, root, args.many)
        print()
        print(f"swarm benchmark: {args.size / GIB:.2f} GiB, one seed -> one leech on 127.0.0.1, "
              f"data in {args.dir or tempfile.gettempdir()}")
        print()
        print("| round | seed -> leech | wall (s) | MB/s | seed CPU s/GiB | leech CPU s/GiB |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['round']} | {row['pair']} | {row['wall']:.2f} | {row['mbps']:.0f} | "
                  f"{row['seed_cpu']:.2f} | {row['leech_cpu']:.2f} |")
        if rss:
            print()
            print(f"| one session seeding {args.many} torrents of {args.many_size >> 20} MiB | peak RSS (MiB) |")
            print("|---|---|")
            for kind, kib in rss.items():
                print(f"| {kind} | {kib / 1024:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
