#!/usr/bin/env bash
# What the sliding-log limiter costs inside redis-server, and where it goes: server time per call (INFO
# commandstats usec_per_call, which excludes networking) of the limiter's own script (admitting, refusing) and of
# probes that isolate the parts it is made of — a script call doing nothing, one redis.call, TIME, and a number
# argument that Redis formats with '%.17g'. Load: redis-benchmark, 4 connections, 16 commands per round trip.
source "$(dirname "$0")/common.sh"
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is needed: apt-get install redis-tools" >&2; exit 1; }
calls=${CALLS:-200000}
start_redis
# The limiter's Lua, as RedisRateLimitStore sends it (the Swift source's string literal, unescaped).
python3 - "$work/limiter.lua" <<'PY'
import re, sys, textwrap
source = open("Sources/EnvoyPlugins/Redis/RedisRateLimitStore.swift").read()
lua = re.search(r'static let script = RedisScript\(\n\s*"""\n(.*?)\n\s*"""', source, re.S).group(1)
open(sys.argv[1], "w").write(textwrap.dedent(lua).replace("\\\\", "\\"))
PY

# measure LABEL LUA KEY ARGS…: server µs per EVALSHA of LUA on KEY (a random member per call in ARGS' last place).
measure() {
    local label=$1 lua=$2 key=$3 sha
    shift 3
    sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "$lua")
    redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
    redis-benchmark -p "$redis_port" -n "$calls" -c 4 -P 16 -r 1000000000 -q EVALSHA "$sha" 1 "$key" "$@" >/dev/null 2>&1
    printf '  %-66s %6s µs\n' "$label" "$(redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' \
        | awk -F'usec_per_call=' '/^cmdstat_evalsha:/ {split($2, v, ","); print v[1]}')"
}
redis-cli -p "$redis_port" SET g 1 >/dev/null
echo "machine: $(nproc) cores; redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2); $calls calls each"
echo "the limiter's script (one policy, sliding log):"
measure "admitting (limit 100000, window 5 s: the log holds ~100000)" "$(cat "$work/limiter.lua")" admit \
    100000 5000 log 1 m__rand_int__
measure "refusing (limit 100 reached, window 3600 s)" "$(cat "$work/limiter.lua")" refuse 100 3600000 log 1 \
    m__rand_int__
echo "its parts:"
measure "a script that does nothing (return 1)" "return 1" g 1 2 3 4 x
measure "one redis.call (GET)" "return redis.call('GET', KEYS[1])" g 1 2 3 4 x
measure "five redis.calls (GET)" "for i = 1, 5 do redis.call('GET', KEYS[1]) end return 1" g 1 2 3 4 x
measure "redis.call('TIME')" "redis.call('TIME') return 1" g 1 2 3 4 x
measure "ZRANGE k '0' '0' (string arguments), five times" \
    "for i = 1, 5 do redis.call('ZRANGE', KEYS[1], '0', '0') end return 1" z 1 2 3 4 x
measure "ZRANGE k 0 0 (number arguments, formatted by Redis), five times" \
    "for i = 1, 5 do redis.call('ZRANGE', KEYS[1], 0, 0) end return 1" z 1 2 3 4 x
