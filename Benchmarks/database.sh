#!/usr/bin/env bash
# The database under load: profile updates (PUT /v1/user/profile — one UPDATE … RETURNING, then the cache
# generation replaced in Redis) on `envoy serve` with its database in SQLite and then in PostgreSQL (both
# local, release build, Redis for cache and limiter, rate limits off), driven by wrk over 50 users in turn.
source "$(dirname "$0")/common.sh"
source scripts/postgres.sh
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
envoy=$(release_binary envoy)
start_redis
start_postgres
trap 'stop_postgres; cleanup' EXIT
echo '[]' > "$work/none.json"
echo "machine: $(nproc) cores; wrk -t 2 -c $connections -d $duration; release build; PostgreSQL $(
    "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" --version | awk '{print $3}') (fsync on)"
for setting in sqlite postgres; do
    port=$(free_port)
    database="sqlite://./envoy.db"
    [ "$setting" = postgres ] && database="$postgres_url"
    start_envoy "$setting" "$port" RATE_LIMITS_FILE="$work/none.json" REDIS_URL="redis://127.0.0.1:$redis_port" \
        DATABASE_URL="$database" JWT_SECRET=benchmark-secret-of-at-least-32-bytes-long BCRYPT_COST=4
    register_users "$port" 50
    {
        lua_tokens
        cat <<'LUA'
local n = 0
request = function()
    n = n + 1
    return wrk.format("PUT", "/v1/user/profile", {
        ["Authorization"] = "Bearer " .. tokens[n % #tokens + 1],
        ["Content-Type"] = "application/json",
    }, '{"company":"Acme ' .. n .. '"}')
end
LUA
    } > "$work/$setting.lua"
    report=$(wrk -t 2 -c "$connections" -d "$duration" --latency -s "$work/$setting.lua" "http://127.0.0.1:$port")
    printf '%-10s %10s profile updates/s, p50 %s, p99 %s%s\n' "$setting" \
        "$(echo "$report" | awk '/Requests\/sec/ {print $2}')" "$(echo "$report" | awk '$1 == "50%" {print $2}')" \
        "$(echo "$report" | awk '$1 == "99%" {print $2}')" \
        "$(echo "$report" | awk '/Non-2xx/ {print " (" $NF " non-2xx)"}')"
    kill "$(cat "$work/$setting.pid")"
done
