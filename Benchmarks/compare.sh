#!/usr/bin/env bash
# Two builds of `envoy` side by side: both serve GET /v1/user/profile (token verified, sliding-log limit on one
# Redis, cache hit) at the same time, each under its own wrk (-t1 -c16), for ROUNDS rounds; prints each build's
# requests/s and CPU per request in every round. Both see the same moment of this shared machine, so the pair in a
# round compares where runs minutes apart do not (its speed drifts 1.5-2x).
# Usage: Benchmarks/compare.sh OLD_ENVOY NEW_ENVOY   (e.g. a copy of .build/release/envoy from before a change)
source "$(dirname "$0")/common.sh"
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || { echo "usage: $0 OLD_ENVOY NEW_ENVOY (two envoy binaries)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
binaries=("$(realpath "$1")" "$(realpath "$2")")
rounds=${ROUNDS:-4}
duration=${DURATION:-8s}
start_redis
ports=()
users=()
for index in 0 1; do
    envoy=${binaries[$index]}
    start_profile_envoy "build$index" 1
    ports[index]=$port
    users[index]=${tokens[0]}
done

echo "machine: $(nproc) cores; each build under wrk -t1 -c16 -d $duration, both at once"
echo "old: ${binaries[0]}"
echo "new: ${binaries[1]}"
for round in $(seq "$rounds"); do
    before0=$(cpu_ticks build0)
    before1=$(cpu_ticks build1)
    wrk -t1 -c16 -d"$duration" -H "Authorization: Bearer ${users[0]}" \
        "http://127.0.0.1:${ports[0]}/v1/user/profile" >"$work/wrk0" &
    old=$!
    wrk -t1 -c16 -d"$duration" -H "Authorization: Bearer ${users[1]}" \
        "http://127.0.0.1:${ports[1]}/v1/user/profile" >"$work/wrk1"
    wait "$old"
    total0=$(awk '/requests in/ {print $1}' "$work/wrk0")
    total1=$(awk '/requests in/ {print $1}' "$work/wrk1")
    printf 'round %s: old %9s requests/s, %4s µs CPU per request; new %9s requests/s, %4s µs CPU per request\n' \
        "$round" "$(awk '/Requests\/sec/ {print $2}' "$work/wrk0")" "$(cpu_micros_per build0 "$before0" "$total0")" \
        "$(awk '/Requests\/sec/ {print $2}' "$work/wrk1")" "$(cpu_micros_per build1 "$before1" "$total1")"
done
