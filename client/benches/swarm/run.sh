#!/usr/bin/env bash
# The swarm benchmark: rivulet and libtorrent 2.1.1, one seed -> one leech, 1 GiB on
# loopback, every pairing in the same run, then peak RSS of a session seeding 100
# torrents. Prints a Markdown table (progress on stderr). Arguments go to swarm.py
# (--size BYTES, --rounds N, --pairs lt-lt,rv-rv,rv-lt,lt-rv,fl-fl,fr-fr,fl-fm,fr-fm,
# --many N, --timeout S). fl-fl / fr-fr / fl-fm / fr-fm are the floor: floor.c moving the
# same file with no protocol (see swarm.py).
#
#   bash client/benches/swarm/run.sh [--rounds 3]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
if [ -z "${RIVULET_PYTHON:-}" ]; then
  eval "$(bash .ci/setup-interop)"
fi
py=${RIVULET_PYTHON:-}
if [ -z "$py" ] || ! "$py" -c 'import libtorrent' 2>/dev/null; then
  echo "SKIP: no python with libtorrent (run .ci/setup-interop)" >&2
  exit 0
fi
cargo build --release -q -p rivulet --bin rivulet --example seed_many
floor=()
if cc -O2 -o "${TMPDIR:-/tmp}/rivulet-swarm-floor" "$here/floor.c" -lcrypto -lpthread 2>/dev/null; then
  floor=(--floor "${TMPDIR:-/tmp}/rivulet-swarm-floor")
else
  echo "note: floor.c not built (needs cc and OpenSSL headers, e.g. apt install gcc libssl-dev)" >&2
fi
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec timeout 1800 "$py" "$here/swarm.py" \
  --rivulet "$target/release/rivulet" \
  --seed-many "$target/release/examples/seed_many" \
  --python "$py" "${floor[@]}" "$@"
