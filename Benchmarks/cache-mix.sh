#!/usr/bin/env bash
# Share of reads served from the cache on a read-heavy mix, embedded and on Redis (Benchmarks/cache_mix.py).
source "$(dirname "$0")/common.sh"
requests=${1:-20000}
envoy=$(release_binary envoy)
start_redis
echo '[]' > "$work/none.json"
for setting in embedded redis; do
    port=$(free_port)
    if [ "$setting" = redis ]; then
        start_envoy "$setting" "$port" RATE_LIMITS_FILE="$work/none.json" REDIS_URL="redis://127.0.0.1:$redis_port"
    else
        start_envoy "$setting" "$port" RATE_LIMITS_FILE="$work/none.json"
    fi
    echo "== $setting"
    python3 Benchmarks/cache_mix.py "http://127.0.0.1:$port" "$requests"
done
