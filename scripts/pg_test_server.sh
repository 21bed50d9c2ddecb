#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 (free port) for the store tests; print its URL.
#
#   eval "$(scripts/pg_test_server.sh start)"   # exports UTA_BENCH_TEST_PG_URL and UTA_BENCH_PG_DIR
#   python -m pytest tests/test_store_pg*.py tests/test_store_concurrency_pg.py -q
#   scripts/pg_test_server.sh stop "$UTA_BENCH_PG_DIR"
#
# `start` prints shell `export` lines (the URL also goes to stderr for humans). It needs the Debian
# `postgresql` package (initdb/pg_ctl) and, for the Python side, `pip install "psycopg[binary]"`; with
# --install it runs `apt-get install -y postgresql` first when initdb is missing. When run as root the
# cluster is owned by (and the server runs as) the `postgres` system user, as PostgreSQL refuses root.
# Only loopback TCP is opened (listen_addresses=127.0.0.1, trust auth for 127.0.0.1/32 only); the data
# directory lives under mktemp -d and `stop` deletes it.
set -euo pipefail

cmd="${1:-start}"

find_bin() {
    local b
    b="$(command -v "$1" 2>/dev/null || true)"
    if [[ -z "$b" ]]; then
        b="$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n1 || true)"
    fi
    echo "$b"
}

as_owner() {  # run a command as the cluster owner
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

case "$cmd" in
start)
    if [[ "${2:-}" == "--install" && -z "$(find_bin initdb)" ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    INITDB="$(find_bin initdb)"; PG_CTL="$(find_bin pg_ctl)"
    if [[ -z "$INITDB" || -z "$PG_CTL" ]]; then
        echo "error: initdb/pg_ctl not found; install PostgreSQL (apt-get install -y postgresql) or pass --install" >&2
        exit 2
    fi
    dir="$(mktemp -d /tmp/uta_pg.XXXXXX)"
    chmod 755 "$dir"
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || { echo "error: running as root but no 'postgres' user exists" >&2; exit 2; }
        chown postgres "$dir"
    fi
    port="$(free_port)"
    as_owner "$INITDB" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
        echo "error: initdb failed, see $dir/initdb.log" >&2; exit 2; }
    # loopback TCP only; the unix socket goes into the throwaway dir, not /var/run
    as_owner "$PG_CTL" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=50" start >/dev/null || {
        echo "error: server did not start, see $dir/server.log" >&2; exit 2; }
    as_owner "$(find_bin createdb)" -h 127.0.0.1 -p "$port" -U postgres uta_test
    url="postgresql+psycopg://postgres@127.0.0.1:$port/uta_test"
    echo "PostgreSQL test server: $url (data dir $dir)" >&2
    echo "export UTA_BENCH_TEST_PG_URL='$url'"
    echo "export UTA_BENCH_PG_DIR='$dir'"
    ;;
stop)
    dir="${2:-${UTA_BENCH_PG_DIR:-}}"
    [[ -n "$dir" && -d "$dir/data" ]] || { echo "error: give the data dir printed by start" >&2; exit 2; }
    as_owner "$(find_bin pg_ctl)" -D "$dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start [--install] | stop DIR" >&2
    exit 2
    ;;
esac
