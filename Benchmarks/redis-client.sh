#!/usr/bin/env bash
# Redis client throughput next to redis-benchmark, same machine, same server, same run.
#   sequential:             envoy 1 caller              vs redis-benchmark -c 1  -P 1
#   multiplexed:            envoy 50 callers, 1 conn    vs redis-benchmark -c 1  -P 50
#   multiplexed, pooled:    envoy 200 callers, 4 conns  vs redis-benchmark -c 4  -P 50
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
swift build -c release --product RedisClientBenchmark >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/pid"
trap 'kill $(cat "$dir/pid") 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.5
echo "machine: $(nproc) cores, $(uname -m); redis $(redis-server --version | grep -o 'v=[0-9.]*')"
"$(swift build -c release --show-bin-path)/RedisClientBenchmark" "redis://127.0.0.1:$port" "$requests"
for setting in "1 1 $((requests / 4))" "1 50 $requests" "4 50 $requests"; do
    set -- $setting
    redis-benchmark -p "$port" -c "$1" -P "$2" -n "$3" -t set,get -q | tr '\r' '\n' | grep -E '^(SET|GET):' \
        | sed "s/^/redis-benchmark -c $1 -P $2 /"
done
