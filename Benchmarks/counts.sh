#!/usr/bin/env bash
# Work per request that does not depend on the machine's speed: how many times a request calls malloc, allocates
# a Swift object, retains one, allocates an async frame and switches executor — counted exactly with perf uprobes
# on the shared libraries — for the bare Hummingbird hello route and for GET /v1/user/profile on `envoy serve`
# (token verified, sliding-log limit on Redis, cache hit on Redis), the same load as profile.sh's.
# Repeatable where timings on this shared VM are not (they drift 1.5-2x); a change that adds work shows here.
# Needs root (uprobes) and perf: apt-get install linux-perf. A uprobe costs a trap per call, so the load is light
# (wrk -t1 -c4 for 2 s) and the rates it reaches mean nothing; only the counts do.
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is needed: apt-get install linux-perf" >&2; exit 1; }
envoy=$(release_binary envoy)

# The probes: library and function. They are added under a group of their own and removed on exit.
library() { ldd "$envoy" | awk -v name="$1" '$1 == name {print $3}'; }
probes=(
    "$(library libc.so.6) malloc"
    "$(library libswiftCore.so) swift_allocObject"
    "$(library libswiftCore.so) swift_retain"
    "$(library libswift_Concurrency.so) swift_task_alloc"
    "$(library libswift_Concurrency.so) swift_task_switch"
)
remove_probes() { perf probe -q -d 'envoy_counts:*' >/dev/null 2>&1 || true; }
trap 'remove_probes; cleanup' EXIT
remove_probes
events=()
for probe in "${probes[@]}"; do
    read -r path function <<<"$probe"
    perf probe -q -x "$path" --add "envoy_counts:$function=$function" >/dev/null
    events+=("envoy_counts:$function")
done

start_redis
start_hello
start_profile_envoy profile 1

# count NAME URL [HEADER]: each event's count per request, over a light wrk run against the server started as NAME.
count() {
    local name=$1 url=$2 header=${3:-X-Bench: 1} requests
    perf stat -x, -e "$(IFS=,; echo "${events[*]}")" -p "$(cat "$work/$name.pid")" -o "$work/$name.stat" -- sleep 3 &
    local stat=$!
    sleep 0.5
    requests=$(wrk -t1 -c4 -d2s -H "$header" "$url" | awk '/requests in/ {print $1}')
    wait "$stat"
    awk -F, -v requests="$requests" '$3 ~ /envoy_counts:/ {sub("envoy_counts:", "", $3); printf "%s %.1f\n", $3, $1 / requests}' \
        "$work/$name.stat"
}

declare -A bare envoy_counts
while read -r event value; do bare[$event]=$value; done < <(count hello "http://127.0.0.1:$hello_port/")
while read -r event value; do envoy_counts[$event]=$value; done < <(
    count profile "http://127.0.0.1:$port/v1/user/profile" "Authorization: Bearer ${tokens[0]}")
echo "calls per request (perf uprobes; wrk -t1 -c4 -d2s; release builds)"
printf '  %-20s %12s %22s\n' "" "bare GET /" "envoy GET profile"
for event in "${events[@]}"; do
    event=${event#envoy_counts:}
    printf '  %-20s %12s %22s\n' "$event" "${bare[$event]}" "${envoy_counts[$event]}"
done
