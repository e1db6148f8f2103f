#!/usr/bin/env bash
# Emails delivered per second: N `send_email` tasks on the Redis queue, drained by a worker of C lanes through
# MailgunMailer (libcurl) to the mock Mailgun, timed until the mock has every message. Usage: emails.sh [N] [C]
source "$(dirname "$0")/common.sh"
emails=${1:-20000}
concurrency=${2:-32}
benchmark=$(release_binary QueueBenchmark)
start_redis
echo "machine: $(nproc) cores; $emails emails, $concurrency lanes; worker, redis-server and the mock on the same cores"
"$benchmark" "redis://127.0.0.1:$redis_port" "$emails" "$concurrency" email
