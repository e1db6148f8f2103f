#!/usr/bin/env bash
# Latency at a steady, modest rate, Envoy's route next to the bare Hummingbird route: one keep-alive connection
# paced at RATE requests/s (open loop within the connection: each request waits for its slot, then for its answer),
# GET / on HelloBenchmark and GET /v1/user/profile on `envoy serve` (token verified, sliding-log limit on Redis,
# cache hit), alternating, ROUNDS rounds. Shows what this machine's own tail is when the load is light: the bare
# route's p99 is the floor any route here can reach. Usage: latency.sh [RATE…] (default: 250 1000)
source "$(dirname "$0")/common.sh"
seconds=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-2}
rates=("$@")
[ ${#rates[@]} -eq 0 ] && rates=(250 1000)
envoy=$(release_binary envoy)
start_redis
start_hello
start_profile_envoy profile 1

# paced PORT PATH RATE: one connection, RATE requests/s for $seconds s; prints the percentiles of the answers'
# latency (from the request's write to the end of its answer; the client's own wake-up is not counted).
paced() {
    python3 - "$1" "$2" "$3" "$seconds" "${tokens[0]}" <<'PY'
import http.client, sys, time
port, path, rate, seconds, token = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
connection = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": "Bearer " + token}
count = int(rate * seconds)
latencies = []
start = time.perf_counter()
for index in range(count):
    wait = start + index / rate - time.perf_counter()
    if wait > 0:
        time.sleep(wait)
    sent = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"{path}: HTTP {response.status}")
    latencies.append((time.perf_counter() - sent) * 1000)
late = time.perf_counter() - start - seconds
latencies.sort()
at = lambda q: latencies[min(count - 1, int(q * count))]
print(f"p50 {at(.5):.2f}  p90 {at(.9):.2f}  p99 {at(.99):.2f}  p99.9 {at(.999):.2f} ms"
      + (f"  (the client fell {late:.1f} s behind)" if late > 0.05 * seconds else ""))
PY
}

echo "machine: $(nproc) cores; one keep-alive connection, paced, ${seconds} s per run; release builds"
for rate in "${rates[@]}"; do
    for round in $(seq "$rounds"); do
        printf '  %5s/s  bare Hummingbird GET /           %s\n' "$rate" "$(paced "$hello_port" / "$rate")"
        printf '  %5s/s  envoy GET /v1/user/profile      %s\n' "$rate" "$(paced "$port" /v1/user/profile "$rate")"
    done
done
