# Sourced by scripts/test and the benchmarks: a throwaway PostgreSQL server (Debian's package) on a free loopback
# port. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

# start_postgres: creates a data directory, starts the server; sets postgres_dir, postgres_port, postgres_url.
start_postgres() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    postgres_dir=$(mktemp -d)
    postgres_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    postgres_as=()
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$postgres_dir"; postgres_as=(runuser -u postgres --); fi
    postgres_ctl="$bin/pg_ctl"
    "${postgres_as[@]}" "$bin/initdb" -D "$postgres_dir/data" -U envoy -A trust -E UTF8 --no-sync >/dev/null
    "${postgres_as[@]}" "$postgres_ctl" -D "$postgres_dir/data" -l "$postgres_dir/log" -w -o \
        "-p $postgres_port -k $postgres_dir -c listen_addresses=127.0.0.1 -c max_connections=400 ${POSTGRES_OPTIONS:-}" \
        start >/dev/null
    postgres_url="postgres://envoy@127.0.0.1:$postgres_port/postgres?sslmode=disable"
}

# stop_postgres: stops the server started by start_postgres and removes its directory.
stop_postgres() {
    [ -n "${postgres_dir:-}" ] || return 0
    "${postgres_as[@]}" "$postgres_ctl" -D "$postgres_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$postgres_dir"
}
