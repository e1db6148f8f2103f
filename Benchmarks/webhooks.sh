#!/usr/bin/env bash
# Paddle webhooks accepted per second: wrk (2 threads, 64 connections) posts pre-signed, distinct events to
# `envoy serve` (release, Redis queue); afterwards every accepted event must be on the queue. Usage: webhooks.sh [N]
# Each wrk thread takes every other event and starts again from its first after N/2: keep N above twice the
# requests sent, so that every request carries a new event and the count on the queue must equal it.
source "$(dirname "$0")/common.sh"
events=${1:-150000}
duration=${DURATION:-5s}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
envoy=$(release_binary envoy)
start_redis
port=$(free_port)
secret=pdl_ntfset_bench_secret
start_envoy webhooks "$port" REDIS_URL="redis://127.0.0.1:$redis_port" PADDLE_WEBHOOK_SECRET="$secret" \
    PADDLE_WEBHOOK_TOLERANCE=3600

# N distinct events, each signed as Paddle signs it, as a Lua table wrk cycles through (each event sent once).
python3 - "$events" "$secret" > "$work/events.lua" <<'PY'
import hashlib, hmac, json, sys, time
n, secret = int(sys.argv[1]), sys.argv[2].encode()
ts = str(int(time.time()))
# Lua limits how many constants one function holds: the table is filled by one function per 10,000 events.
print("events = {}")
for i in range(n):
    if i % 10000 == 0:
        print(";(function() local e = events")
    body = json.dumps({"event_id": f"evt_bench_{i}", "event_type": "transaction.completed",
        "occurred_at": "2026-12-01T00:00:00.000Z", "notification_id": f"ntf_bench_{i}",
        "data": {"id": f"txn_bench_{i}", "status": "completed", "customer_id": "ctm_bench", "currency_code": "USD",
                 "details": {"totals": {"grand_total": "1000"}}}}, separators=(",", ":"))
    sig = "ts=" + ts + ";h1=" + hmac.new(secret, (ts + ":" + body).encode(), hashlib.sha256).hexdigest()
    print("e[%d] = {%s,%s}" % (i + 1, json.dumps(body), json.dumps(sig)))
    if i % 10000 == 9999 or i == n - 1:
        print("end)()")
PY
cat >> "$work/events.lua" <<'LUA'
local counter = 0
local threads = 0
function setup(thread) thread:set("offset", threads); threads = threads + 1 end
function init(args) counter = offset end
function request()
  local event = events[(counter % #events) + 1]
  counter = counter + 2
  return wrk.format("POST", "/v1/payments/webhook",
    {["Content-Type"] = "application/json", ["Paddle-Signature"] = event[2]}, event[1])
end
LUA
echo "machine: $(nproc) cores; wrk -t 2 -c 64 -d $duration; $events distinct signed events; queue on Redis"
envoy_before=$(cpu_ticks webhooks)
redis_before=$(cpu_ticks redis)
report=$(wrk -t 2 -c 64 -d "$duration" -s "$work/events.lua" "http://127.0.0.1:$port")
echo "$report" | grep -E 'Requests/sec|requests in|Non-2xx|Latency'
sent=$(echo "$report" | awk '/requests in/ {print $1}')
echo "CPU per webhook: envoy serve $(cpu_micros_per webhooks "$envoy_before" "$sent") µs," \
    "redis-server $(cpu_micros_per redis "$redis_before" "$sent") µs"
non2xx=$(echo "$report" | awk '/Non-2xx/ {print $NF}')
queued=$(LOG_LEVEL=error REDIS_URL="redis://127.0.0.1:$redis_port" DATABASE_URL="sqlite://$work/stats.db" "$envoy" queues stats --json | python3 -c '
import json, sys
print(sum(q["ready"] + q["delayed"] + q["in_flight"] for q in json.load(sys.stdin) if q["queue"] == "payments"))')
accepted=$(( sent - ${non2xx:-0} ))
if (( 2 * sent <= events )); then
    # No thread reached its half's end, so every answered request was a distinct event. (wrk counts requests
    # answered; those still in flight when it stops may be queued too, so the queue may hold a few more.)
    verdict=$( (( queued >= accepted )) && echo "none lost" || echo "LOST: $(( accepted - queued ))")
    echo "accepted: $accepted distinct events; on the queue afterwards: $queued — $verdict"
else
    echo "accepted: $accepted, more than half of the $events events: a wrk thread may have sent some twice, so" \
        "the distinct count is unknown (on the queue: $queued); run again with more events"
fi
