#!/usr/bin/env bash
# Redis client throughput next to redis-benchmark, same machine, same server, same run. Each row runs Envoy's
# client and redis-benchmark alternately, `rounds` times (default 3), and prints the medians and their ratio:
#   sequential:            envoy 1 caller                             vs redis-benchmark -c 1 -P 1
#   multiplexed:           envoy 50 single-command callers, 1 conn    vs redis-benchmark -c 1 -P 50
#   multiplexed, pooled:   envoy 200 single-command callers, 4 conns  vs redis-benchmark -c 4 -P 50
#   explicit pipelines:    envoy 1 caller, pipeline(50 commands)      vs redis-benchmark -c 1 -P 50
#                          envoy 4 callers on 4 conns, pipeline(50)   vs redis-benchmark -c 4 -P 50
source "$(dirname "$0")/common.sh"
requests=${1:-200000}
rounds=${2:-3}
benchmark=$(release_binary RedisClientBenchmark)
start_redis
echo "machine: $(nproc) cores, $(uname -m); redis $(redis-server --version | grep -o 'v=[0-9.]*');" \
    "medians of $rounds alternating rounds"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-44s %-8s %14s %16s %7s\n' "load (envoy callers:connections:depth)" command envoy/s redis-benchmark/s ratio
for row in "1:1:1 1 1" "50:1:1 1 50" "200:4:1 4 50" "1:1:50 1 50" "4:4:50 4 50"; do
    set -- $row
    load=$1 clients=$2 depth=$3
    count=$requests
    [ "$load" = 1:1:1 ] && count=$((requests / 4))
    : > "$work/envoy" && : > "$work/reference"
    for _ in $(seq "$rounds"); do
        "$benchmark" "redis://127.0.0.1:$redis_port" "$requests" "$load" \
            | sed -E 's/^envoy ([A-Z]+) .*: ([0-9]+) requests per second/\1 \2/' >> "$work/envoy"
        redis-benchmark -p "$redis_port" -c "$clients" -P "$depth" -n "$count" -t set,get -q | tr '\r' '\n' \
            | sed -nE 's/^(SET|GET): ([0-9]+)\.[0-9]+ requests per second.*/\1 \2/p' >> "$work/reference"
    done
    for command in SET GET; do
        ours=$(awk -v c="$command" '$1 == c { print $2 }' "$work/envoy" | median)
        theirs=$(awk -v c="$command" '$1 == c { print $2 }' "$work/reference" | median)
        printf '%-44s %-8s %14s %16s %6s%%\n' "$load (redis-benchmark -c $clients -P $depth)" "$command" "$ours" \
            "$theirs" "$((100 * ours / theirs))"
    done
done
