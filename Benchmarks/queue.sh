#!/usr/bin/env bash
# No-op tasks/s through enqueue → worker → ack on Redis, next to Sidekiq (Debian's ruby-sidekiq, concurrency 10,
# push_bulk then drain), same machine, same redis-server, same run.
source "$(dirname "$0")/common.sh"
tasks=${1:-50000}
concurrency=${2:-10}
command -v sidekiq >/dev/null || { echo "sidekiq is needed: apt-get install ruby-sidekiq" >&2; exit 1; }
benchmark=$(release_binary QueueBenchmark)
start_redis
echo "machine: $(nproc) cores; redis $(redis-server --version | grep -o 'v=[0-9.]*'); $tasks tasks, concurrency $concurrency"
"$benchmark" "redis://127.0.0.1:$redis_port" "$tasks" "$concurrency"
REDIS_URL="redis://127.0.0.1:$redis_port/1" ruby Benchmarks/sidekiq/run.rb "$tasks" "$concurrency" 2> >(grep -v "Redis#sadd" >&2)
