#!/usr/bin/env bash
# Envoy's request path against the framework's ceiling, in one run with one load generator (wrk -t2):
#   a bare Hummingbird hello route (HelloBenchmark, same package, release) versus
#   GET /v1/user/profile on `envoy serve` with Redis: token verified, sliding-log limit on (a limit never reached),
#   cache hit. Two pairs of runs: one user with wrk's plain request (the generator at its cheapest), then 50 users
#   in turn from a wrk script (precomputed requests; the bare route gets the same script, so the same generator).
# Also: Redis commands per profile request (INFO commandstats, script internals included), resident memory of
# `envoy serve` after the load, and how long `envoy serve` takes from exec to answering /health.
source "$(dirname "$0")/common.sh"
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
envoy=$(release_binary envoy)
start_redis
start_hello
users=50
start_profile_envoy profile "$users"
token=${tokens[0]}
wrk_script / > "$work/hello.lua"
wrk_script /v1/user/profile > "$work/profile.lua"

calls() { redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | grep -E '^cmdstat_' | sed -E 's/.*:calls=([0-9]+),.*/\1/' | paste -sd+ | bc; }
# Round trips per profile request: the server's read events (INFO stats total_reads_processed) over 200
# sequential requests, nobody else using this redis-server (the INFO call counts itself once).
reads() { redis-cli -p "$redis_port" INFO stats | tr -d '\r' | awk -F: '$1 == "total_reads_processed" {print $2}'; }
round_trips() {
    local first last
    first=$(reads)
    for _ in $(seq 200); do
        curl -sf "localhost:$port/v1/user/profile" -H "Authorization: Bearer $token" >/dev/null
    done
    last=$(reads)
    echo "scale=2; ($last - $first - 1) / 200" | bc
}

# run NAME SERVER URL [wrk options…]: one wrk run against SERVER (hello or profile); prints its line with the CPU
# time the server (and redis-server) spent per request; sets `rps`, `requests`.
run() {
    local name=$1 server=$2 url=$3 report server_before redis_before cpu
    shift 3
    server_before=$(cpu_ticks "$server")
    redis_before=$(cpu_ticks redis)
    report=$(wrk -t 2 -c "$connections" -d "$duration" --latency "$@" "$url")
    rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
    requests=$(echo "$report" | awk '/requests in/ {print $1}')
    cpu="$(cpu_micros_per "$server" "$server_before" "$requests") µs"
    [ "$server" = profile ] && cpu="$cpu + redis-server $(cpu_micros_per redis "$redis_before" "$requests") µs"
    printf '  %-56s %10s requests/s, p99 %s%s; CPU per request %s\n' "$name" "$rps" \
        "$(echo "$report" | awk '$1 == "99%" {print $2}')" \
        "$(echo "$report" | awk '/Non-2xx/ {print " (" $NF " non-2xx)"}')" "$cpu"
}

echo "machine: $(nproc) cores; wrk -t 2 -c $connections -d $duration; release builds"
trips=$(round_trips)
echo "one user, wrk's plain request:"
run "bare Hummingbird GET / (HelloBenchmark)" hello "http://127.0.0.1:$hello_port/"
hello_rps=$rps
before=$(calls)
run "envoy GET /v1/user/profile (limit on Redis, cache hit)" profile "http://127.0.0.1:$port/v1/user/profile" \
    -H "Authorization: Bearer $token"
after=$(calls)
echo "  profile / hello: $(echo "scale=1; 100 * $rps / $hello_rps" | bc) %"
echo "  Redis commands per profile request: $(echo "scale=2; ($after - $before) / $requests" | bc)" \
    "(script internals included); round trips per request (server read events, 200 sequential requests): $trips"
echo "$users users in turn, the same wrk script for both:"
run "bare Hummingbird GET /" hello "http://127.0.0.1:$hello_port" -s "$work/hello.lua"
hello_rps=$rps
run "envoy GET /v1/user/profile" profile "http://127.0.0.1:$port" -s "$work/profile.lua"
echo "  profile / hello: $(echo "scale=1; 100 * $rps / $hello_rps" | bc) %"
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$work/profile.pid")/status" 2>/dev/null || echo 0)
echo "envoy serve resident memory after the load: $(( rss_kb / 1024 )) MiB"
echo "envoy serve ready (exec → /health answered): ${ready_ms} ms (includes the 100 ms polling step)"
