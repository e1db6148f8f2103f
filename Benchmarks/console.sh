#!/usr/bin/env bash
# The console's pages with READY tasks queued and DEAD dead-lettered on Redis (default 100,000 and 10,000): each
# page's server time (median of 20 requests, curl's time_total on loopback) and weight (HTML plus its CSS and
# script, bytes). Release build; the machine's core count is printed with the figures.
source "$(dirname "$0")/common.sh"
ready=${1:-100000}
dead=${2:-10000}
envoy=$(release_binary envoy)
bench=$(release_binary QueueBenchmark)
start_redis
prefix=console
"$bench" seed "redis://127.0.0.1:$redis_port" "$prefix" "$ready" "$dead"
port=$(free_port)
token=console-benchmark-admin-token-0123456789
PORT=$port REDIS_URL="redis://127.0.0.1:$redis_port" REDIS_KEY_PREFIX=$prefix ADMIN_TOKEN=$token LOG_LEVEL=error \
    DATABASE_URL="sqlite://$work/envoy.db" JWT_SECRET=console-benchmark-jwt-secret-0123456789 \
    MAIL_OUTBOX_DIR="$work/outbox" "$envoy" serve --no-worker >"$work/envoy.log" 2>&1 &
echo $! >"$work/envoy.pid"
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done
cookie=$(curl -s -o /dev/null -D - -d "token=$token" "$base/admin/login" | grep -i '^set-cookie:' | sed 's/^[^:]*: //; s/;.*//' | tr -d '\r')
task=$(curl -s -H "Authorization: Bearer $token" "$base/admin/api/dead?limit=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
assets=$(( $(curl -s -b "$cookie" "$base/admin/assets/console.css" | wc -c) + $(curl -s -b "$cookie" "$base/admin/assets/console.js" | wc -c) ))
echo "machine: $(nproc) cores; $ready tasks ready, $dead dead (Redis); CSS + script: $assets bytes (once, then cached by path)"
echo "| page | HTML bytes | server time ms (median of 20) |"
echo "|---|---|---|"
for page in /admin /admin/queues/bench /admin/dead "/admin/dead?error=seeded%20ab" "/admin/tasks/$task" "/admin/limits?subject=ip:203.0.113.7" \
    /admin/api/overview "/admin/api/dead?limit=200"; do
    times=()
    for _ in $(seq 20); do
        times+=("$(curl -s -o "$work/page" -w '%{time_total}' -b "$cookie" -H "Authorization: Bearer $token" "$base$page")")
    done
    bytes=$(wc -c <"$work/page")
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 10p)
    echo "| \`$page\` | $bytes | $(python3 -c "print(f'{$median * 1000:.1f}')") |"
done
