#!/usr/bin/env bash
# Share of reads served from the cache on a read-heavy mix, embedded and on Redis (Benchmarks/cache_mix.py).
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
swift build -c release --product envoy >/dev/null
envoy="$(swift build -c release --show-bin-path)/envoy"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize yes --pidfile "$work/redis.pid"
cleanup() { for pidfile in "$work"/*.pid; do kill "$(cat "$pidfile")" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
echo '[]' > "$work/none.json"
for setting in embedded redis; do
    port=$(free_port)
    mkdir -p "$work/$setting"
    redis=""
    [ "$setting" = redis ] && redis="redis://127.0.0.1:$redis_port"
    (cd "$work/$setting" && exec env PORT="$port" RATE_LIMITS_FILE="$work/none.json" LOG_LEVEL=error ${redis:+REDIS_URL=$redis} \
        EMAIL_TEMPLATES_DIR="$OLDPWD/templates/email" "$envoy" serve >"$work/$setting.log" 2>&1) &
    echo $! > "$work/$setting.pid"
    for _ in $(seq 100); do curl -sf "localhost:$port/health" >/dev/null && break; sleep 0.1; done
    echo "== $setting"
    python3 Benchmarks/cache_mix.py "http://127.0.0.1:$port" "$requests"
done
