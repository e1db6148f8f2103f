#!/usr/bin/env bash
# What an idle `envoy serve` (Redis configured, nothing arriving) costs: CPU time and context switches of all its
# threads over SECONDS (default 10), after the profile benchmark's start-up (one user, one cached read).
source "$(dirname "$0")/common.sh"
seconds=${1:-10}
envoy=$(release_binary envoy)
start_redis
start_profile_envoy profile 1
pid=$(cat "$work/profile.pid")
switches() { cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ {total += $2} END {print total}'; }
sleep 2
ticks=$(cpu_ticks profile)
before=$(switches)
sleep "$seconds"
echo "idle envoy serve over $seconds s: $(( ($(cpu_ticks profile) - ticks) * 10 )) ms of CPU," \
    "$(( ($(switches) - before) / seconds )) context switches a second"
