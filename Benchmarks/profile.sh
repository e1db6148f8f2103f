#!/usr/bin/env bash
# Envoy's request path against the framework's ceiling, in one run with one load generator (wrk -t2):
#   a bare Hummingbird hello route (HelloBenchmark, same package, release) versus
#   GET /v1/user/profile on `envoy serve` with Redis: token verified, sliding-log limit on (one user, a limit it
#   never reaches), cache hit.
# Also: Redis commands per profile request (INFO commandstats, script internals included), resident memory of
# `envoy serve` after the load, and how long `envoy serve` takes from exec to answering /health.
source "$(dirname "$0")/common.sh"
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
envoy=$(release_binary envoy)
hello=$(release_binary HelloBenchmark)
start_redis
echo '[{"name":"authenticated","limit":100000,"window":60,"key":"user","match":{"authenticated":true}}]' > "$work/log.json"

hello_port=$(free_port)
PORT=$hello_port "$hello" >"$work/hello.log" 2>&1 &
echo $! > "$work/hello.pid"
for _ in $(seq 100); do curl -sf "localhost:$hello_port/" >/dev/null && break; sleep 0.1; done

port=$(free_port)
started=$(date +%s%N)
start_envoy profile "$port" RATE_LIMITS_FILE="$work/log.json" REDIS_URL="redis://127.0.0.1:$redis_port" BCRYPT_COST=4
ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))
curl -sf -XPOST "localhost:$port/v1/auth/register" -d '{"email":"bench@example.com","password":"correct horse","name":"B"}' >/dev/null
token=$(curl -sf -XPOST "localhost:$port/v1/auth/login" -d '{"email":"bench@example.com","password":"correct horse"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sf "localhost:$port/v1/user/profile" -H "Authorization: Bearer $token" >/dev/null   # warm the cache

calls() { redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | grep -E '^cmdstat_' | sed -E 's/.*:calls=([0-9]+),.*/\1/' | paste -sd+ | bc; }
# Round trips of one profile request: MONITOR shows each command the client sent; a script's own commands are
# marked "lua" and are not round trips.
round_trips() {
    timeout 2 redis-cli -p "$redis_port" MONITOR > "$work/monitor.log" &
    sleep 0.5
    curl -sf "localhost:$port/v1/user/profile" -H "Authorization: Bearer $token" >/dev/null
    wait || true
    grep -v -e ' lua\]' -e '^OK' -e '"ping"' -e '"PING"' "$work/monitor.log" | grep -c '"' || true
}

echo "machine: $(nproc) cores; wrk -t 2 -c $connections -d $duration; release builds"
hello_report=$(wrk -t 2 -c "$connections" -d "$duration" --latency "http://127.0.0.1:$hello_port/")
trips=$(round_trips)
before=$(calls)
profile_report=$(wrk -t 2 -c "$connections" -d "$duration" --latency -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/v1/user/profile")
after=$(calls)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$work/profile.pid")/status" 2>/dev/null || echo 0)
hello_rps=$(echo "$hello_report" | awk '/Requests\/sec/ {print $2}')
profile_rps=$(echo "$profile_report" | awk '/Requests\/sec/ {print $2}')
requests=$(echo "$profile_report" | awk '/requests in/ {print $1}')
printf '%-58s %10s requests/s, p99 %s\n' "bare Hummingbird GET / (HelloBenchmark)" "$hello_rps" \
    "$(echo "$hello_report" | awk '$1 == "99%" {print $2}')"
printf '%-58s %10s requests/s, p99 %s%s\n' "envoy GET /v1/user/profile (token, limit on Redis, cache hit)" \
    "$profile_rps" "$(echo "$profile_report" | awk '$1 == "99%" {print $2}')" \
    "$(echo "$profile_report" | awk '/Non-2xx/ {print " (" $NF " non-2xx)"}')"
echo "  profile / hello: $(echo "scale=1; 100 * $profile_rps / $hello_rps" | bc) %"
echo "  Redis commands per profile request: $(echo "scale=2; ($after - $before) / $requests" | bc)" \
    "(script internals included); round trips per request (MONITOR, one request): $trips"
echo "  envoy serve resident memory after the load: $(( rss_kb / 1024 )) MiB"
echo "  envoy serve ready (exec → /health answered): ${ready_ms} ms (includes the 100 ms polling step)"
