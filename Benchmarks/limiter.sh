#!/usr/bin/env bash
# The rate limiter's cost: requests per second of one route (GET /v1/user/profile, a cache hit) with no
# policy, with a policy on the in-memory store, and with the same policy on Redis — measured in one run with
# wrk — plus Redis commands per request from INFO commandstats.
source "$(dirname "$0")/common.sh"
duration=${DURATION:-5s}
connections=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
envoy=$(release_binary envoy)
start_redis
echo '[]' > "$work/none.json"
echo '[{"name":"authenticated","limit":1000000000,"window":60,"key":"user","match":{"authenticated":true},"algorithm":"gcra"}]' > "$work/gcra.json"
echo '[{"name":"authenticated","limit":100000,"window":2,"key":"user","match":{"authenticated":true}}]' > "$work/log.json"

# serve NAME POLICIES [REDIS_URL]: starts envoy, registers a user, prints the port and token.
serve() {
    local name=$1 policies=$2 redis=${3:-} port token
    port=$(free_port)
    if [ -n "$redis" ]; then
        start_envoy "$name" "$port" RATE_LIMITS_FILE="$policies" REDIS_URL="$redis"
    else
        start_envoy "$name" "$port" RATE_LIMITS_FILE="$policies"
    fi
    curl -sf -XPOST "localhost:$port/v1/auth/register" -d '{"email":"bench@example.com","password":"correct horse","name":"B"}' >/dev/null
    token=$(curl -sf -XPOST "localhost:$port/v1/auth/login" -d '{"email":"bench@example.com","password":"correct horse"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    echo "$port $token"
}

# run LABEL NAME PORT TOKEN: one wrk run against the envoy started as NAME; prints its line (with the CPU time
# `envoy serve` and redis-server spent per request) to stderr and the number of requests to stdout.
run() {
    local label=$1 name=$2 port=$3 token=$4
    curl -sf "localhost:$port/v1/user/profile" -H "Authorization: Bearer $token" >/dev/null   # warm the cache
    local report rps total envoy_before redis_before envoy_us redis_us
    envoy_before=$(cpu_ticks "$name")
    redis_before=$(cpu_ticks redis)
    report=$(wrk -t 2 -c "$connections" -d "$duration" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/user/profile")
    rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
    total=$(echo "$report" | awk '/requests in/ {print $1}')
    non2xx=$(echo "$report" | awk '/Non-2xx/ {print $NF}')
    envoy_us=$(cpu_micros_per "$name" "$envoy_before" "$total")
    redis_us=$(cpu_micros_per redis "$redis_before" "$total")
    printf '%-52s %10s requests/s%s; CPU per request: envoy serve %s µs, redis-server %s µs\n' "$label" "$rps" \
        "${non2xx:+ ($non2xx non-2xx)}" "$envoy_us" "$redis_us" >&2
    echo "$total"
}

commandstats() { redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | grep -E '^cmdstat_' ; }
total_calls() { commandstats | sed -E 's/.*:calls=([0-9]+),.*/\1/' | paste -sd+ | bc; }

echo "machine: $(nproc) cores; wrk -t 2 -c $connections -d $duration; GET /v1/user/profile (cache hit)"
read -r p1 t1 < <(serve none "$work/none.json")
read -r p2 t2 < <(serve memory "$work/log.json")
read -r p3 t3 < <(serve redis-none "$work/none.json" "redis://127.0.0.1:$redis_port")
read -r p4 t4 < <(serve redis-log "$work/log.json" "redis://127.0.0.1:$redis_port")
read -r p5 t5 < <(serve redis-gcra "$work/gcra.json" "redis://127.0.0.1:$redis_port")
run "embedded, no policy" none "$p1" "$t1" >/dev/null
run "embedded, sliding-log policy (in-memory store)" memory "$p2" "$t2" >/dev/null
before=$(total_calls)
requests=$(run "Redis, no policy (cache on Redis)" redis-none "$p3" "$t3")
echo "  Redis commands per request: $(echo "scale=2; ($(total_calls) - $before) / $requests" | bc)"
before=$(total_calls)
requests=$(run "Redis, sliding-log policy (limiter on Redis)" redis-log "$p4" "$t4")
echo "  Redis commands per request: $(echo "scale=2; ($(total_calls) - $before) / $requests" | bc)"
before=$(total_calls)
requests=$(run "Redis, GCRA policy (limiter on Redis)" redis-gcra "$p5" "$t5")
echo "  Redis commands per request: $(echo "scale=2; ($(total_calls) - $before) / $requests" | bc)"
commandstats | grep -E 'cmdstat_(evalsha|get|eval):' | sed 's/^/  /'
