#!/usr/bin/env bash
# Redis client throughput next to redis-benchmark, same machine, same server, same run.
#   sequential:             envoy 1 caller              vs redis-benchmark -c 1  -P 1
#   multiplexed:            envoy 50 callers, 1 conn    vs redis-benchmark -c 1  -P 50
#   multiplexed, pooled:    envoy 200 callers, 4 conns  vs redis-benchmark -c 4  -P 50
#   explicit pipelines:     envoy 1 caller, 1 conn, pipeline(50 commands)   vs redis-benchmark -c 1 -P 50
#                           envoy 4 callers, 4 conns, pipeline(50 commands) vs redis-benchmark -c 4 -P 50
source "$(dirname "$0")/common.sh"
requests=${1:-200000}
benchmark=$(release_binary RedisClientBenchmark)
start_redis
port=$redis_port
echo "machine: $(nproc) cores, $(uname -m); redis $(redis-server --version | grep -o 'v=[0-9.]*')"
"$benchmark" "redis://127.0.0.1:$port" "$requests"
for setting in "1 1 $((requests / 4))" "1 50 $requests" "4 50 $requests"; do
    set -- $setting
    redis-benchmark -p "$port" -c "$1" -P "$2" -n "$3" -t set,get -q | tr '\r' '\n' | grep -E '^(SET|GET): [0-9.]+ requests per second' \
        | sed "s/^/redis-benchmark -c $1 -P $2 /"
done
