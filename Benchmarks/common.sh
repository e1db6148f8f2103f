# Shared by the benchmark scripts: sourced, not run.
# Builds the release binaries, makes a scratch directory that is removed on exit, and starts servers in it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mktemp -d)
cleanup() {
    for pidfile in "$work"/*.pid; do [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# cpu_ticks NAME: the CPU time (user + system) the process started as NAME (pid in $work/NAME.pid: redis, an
# envoy, hello) has used so far, in clock ticks (100 a second).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$work/$1.pid")/stat"; }

# cpu_micros_per NAME TICKS COUNT: microseconds of CPU NAME used since cpu_ticks gave TICKS, per one of COUNT.
cpu_micros_per() { echo $(( ($(cpu_ticks "$1") - $2) * 10000 / $3 )); }

# release_binary PRODUCT: builds it in release mode and prints its path.
release_binary() {
    swift build -c release --product "$1" >/dev/null
    echo "$(swift build -c release --show-bin-path)/$1"
}

# start_redis: a throwaway redis-server on a free port; sets redis_port.
start_redis() {
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize yes \
        --pidfile "$work/redis.pid"
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# start_hello: HelloBenchmark (the bare Hummingbird hello route, release) on a free port; sets hello_port.
start_hello() {
    local hello
    hello=$(release_binary HelloBenchmark)
    hello_port=$(free_port)
    PORT=$hello_port "$hello" >"$work/hello.log" 2>&1 &
    echo $! > "$work/hello.pid"
    for _ in $(seq 100); do curl -sf "localhost:$hello_port/" >/dev/null && return; sleep 0.1; done
    echo "HelloBenchmark did not start: $(cat "$work/hello.log")" >&2
    exit 1
}

# limit_on_policies: $work/log.json, a sliding-log policy on authenticated users that the load never reaches (up to
# 50,000 requests/s for one user: the limiter decides every request, none is refused).
limit_on_policies() {
    echo '[{"name":"authenticated","limit":100000,"window":2,"key":"user","match":{"authenticated":true}}]' \
        > "$work/log.json"
}

# start_profile_envoy NAME USERS [VAR=value…]: `envoy serve` ($envoy) as NAME on a free port, every authenticated
# request limited by limit_on_policies' sliding log on the Redis of start_redis, with USERS registered users whose
# profiles are cached already; sets port, tokens, and ready_ms (exec to /health answered, 100 ms polling included).
start_profile_envoy() {
    local name=$1 users=$2 started token
    shift 2
    limit_on_policies
    port=$(free_port)
    started=$(date +%s%N)
    start_envoy "$name" "$port" RATE_LIMITS_FILE="$work/log.json" REDIS_URL="redis://127.0.0.1:$redis_port" \
        REDIS_KEY_PREFIX="$name" BCRYPT_COST=4 "$@"
    ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))
    register_users "$port" "$users"
    for token in "${tokens[@]}"; do
        curl -sf "localhost:$port/v1/user/profile" -H "Authorization: Bearer $token" >/dev/null
    done
}

# start_envoy NAME PORT [VAR=value…]: `envoy serve` in its own directory, waits until /health answers.
start_envoy() {
    local name=$1 port=$2
    shift 2
    mkdir -p "$work/$name"
    (cd "$work/$name" && exec env PORT="$port" LOG_LEVEL=error EMAIL_TEMPLATES_DIR="$OLDPWD/templates/email" "$@" \
        "$envoy" serve >"$work/$name.log" 2>&1) &
    echo $! > "$work/$name.pid"
    for _ in $(seq 100); do curl -sf "localhost:$port/health" >/dev/null && return; sleep 0.1; done
    echo "envoy $name did not start: $(cat "$work/$name.log")" >&2
    exit 1
}

# register_users PORT COUNT: signs up COUNT users (u1@example.com …) on the envoy at PORT and logs each in; sets
# `tokens` to their access tokens.
register_users() {
    local port=$1 count=$2 index
    tokens=()
    for index in $(seq "$count"); do
        curl -sf -XPOST "localhost:$port/v1/auth/register" \
            -d "{\"email\":\"u$index@example.com\",\"password\":\"correct horse\",\"name\":\"U\"}" >/dev/null
        tokens+=("$(curl -sf -XPOST "localhost:$port/v1/auth/login" \
            -d "{\"email\":\"u$index@example.com\",\"password\":\"correct horse\"}" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')")
    done
}

# lua_tokens: `tokens` as a Lua table named `tokens`, for a wrk script.
lua_tokens() {
    echo 'local tokens = {'
    printf '"%s",\n' "${tokens[@]}"
    echo '}'
}

# wrk_script PATH: a wrk script sending GET PATH once per user of `tokens` in turn, each request formatted once per
# wrk thread.
wrk_script() {
    lua_tokens
    cat <<LUA
local requests = {}
init = function(args)
    for i, token in ipairs(tokens) do
        requests[i] = wrk.format("GET", "$1", { ["Authorization"] = "Bearer " .. token })
    end
end
local n = 0
request = function()
    n = n + 1
    return requests[n % #requests + 1]
end
LUA
}
