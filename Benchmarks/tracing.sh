#!/usr/bin/env bash
# What tracing costs on the request path, in one run: two `envoy serve` (release) on one Redis, the same as
# profile.sh's (token, sliding-log limit on Redis, cache hit on GET /v1/user/profile): one with tracing off, one
# exporting every span over OTLP/HTTP (http/protobuf) to a local sink that answers 200 and discards them, one
# sampling 1 % of traces (OTEL_TRACES_SAMPLER=traceidratio). ROUNDS (default 4) rounds, each loading off, on and
# sampled with wrk -t2 (50 users in turn); prints requests/s and CPU per request of each, and ratios to off.
source "$(dirname "$0")/common.sh"
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
rounds=${ROUNDS:-4}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
envoy=$(release_binary envoy)
start_redis
sink_port=$(free_port)
python3 - "$sink_port" > "$work/sink.log" 2>&1 <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        size = len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        print(size, flush=True)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
echo $! > "$work/sink.pid"
users=50
start_profile_envoy off "$users"
off_port=$port
start_profile_envoy on "$users" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
on_port=$port
start_profile_envoy sampled "$users" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" \
    OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
sampled_port=$port
wrk_script /v1/user/profile > "$work/profile.lua"
# load NAME PORT: one wrk run; sets rps and cpu (µs of envoy serve CPU per request).
load() {
    local before report requests
    before=$(cpu_ticks "$1")
    report=$(wrk -t 2 -c "$connections" -d "$duration" --latency -s "$work/profile.lua" "http://127.0.0.1:$2")
    rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
    requests=$(echo "$report" | awk '/requests in/ {print $1}')
    cpu=$(cpu_micros_per "$1" "$before" "$requests")
    p99=$(echo "$report" | awk '$1 == "99%" {print $2}')
}
echo "machine: $(nproc) cores; wrk -t 2 -c $connections -d $duration, $users users in turn; release build"
ratio() { echo "scale=3; $1 / $2" | bc; }
for round in $(seq "$rounds"); do
    load off "$off_port"; off_rps=$rps off_cpu=$cpu off_p99=$p99
    load on "$on_port"; on_rps=$rps on_cpu=$cpu on_p99=$p99
    load sampled "$sampled_port"; sampled_rps=$rps sampled_cpu=$cpu sampled_p99=$p99
    printf '  round %d: off %9s requests/s, %4d µs CPU, p99 %7s\n' "$round" "$off_rps" "$off_cpu" "$off_p99"
    printf '           on  %9s requests/s, %4d µs CPU, p99 %7s (to off: requests/s %s, CPU per request %s)\n' \
        "$on_rps" "$on_cpu" "$on_p99" "$(ratio "$on_rps" "$off_rps")" "$(ratio "$on_cpu" "$off_cpu")"
    printf '           1 %% %9s requests/s, %4d µs CPU, p99 %7s (to off: requests/s %s, CPU per request %s)\n' \
        "$sampled_rps" "$sampled_cpu" "$sampled_p99" "$(ratio "$sampled_rps" "$off_rps")" \
        "$(ratio "$sampled_cpu" "$off_cpu")"
done
echo "OTLP exports the sink received: $(grep -c . "$work/sink.log") ($(paste -sd+ "$work/sink.log" | bc) bytes)"
