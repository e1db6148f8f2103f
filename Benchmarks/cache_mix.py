#!/usr/bin/env python3
"""A read-heavy mix against a running `envoy serve` (rate limits off): 50 users; per request 85% GET profile,
10% GET notifications, 3% PUT profile, 2% POST notification. Prints the share of profile reads served from the
cache and the database queries saved, from the server's own /metrics. Run through Benchmarks/cache-mix.sh."""
import json
import random
import re
import sys
import urllib.request

base = sys.argv[1]
requests = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
random.seed(7)


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def metric(text, name, labels):
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


tokens = []
for index in range(50):
    email = f"mix{index}@example.com"
    call("POST", "/v1/auth/register", {"email": email, "password": "correct horse", "name": f"User {index}"})
    tokens.append(call("POST", "/v1/auth/login", {"email": email, "password": "correct horse"})["access_token"])

before = urllib.request.urlopen(base + "/metrics").read().decode()
for _ in range(requests):
    token = random.choice(tokens)
    roll = random.random()
    if roll < 0.85:
        call("GET", "/v1/user/profile", token=token)
    elif roll < 0.95:
        call("GET", "/api/notifications/?limit=20", token=token)
    elif roll < 0.98:
        call("PUT", "/v1/user/profile", {"company": f"Acme {random.randint(0, 9)}"}, token=token)
    else:
        call("POST", "/api/notifications/", {"title": "Hello", "message": "A new event"}, token=token)
after = urllib.request.urlopen(base + "/metrics").read().decode()


def delta(name, **labels):
    return metric(after, name, labels) - metric(before, name, labels)


hits, misses = delta("envoy_cache_requests_total", cache="profile", result="hit"), delta(
    "envoy_cache_requests_total", cache="profile", result="miss")
n_hits, n_misses = delta("envoy_cache_requests_total", cache="notifications", result="hit"), delta(
    "envoy_cache_requests_total", cache="notifications", result="miss")
queries = delta("envoy_db_queries_total", component="app")
print(f"{requests} requests, 50 users: 85% profile reads, 10% notification reads, 5% writes")
print(f"profile reads from cache:       {hits:.0f} of {hits + misses:.0f} = {100 * hits / (hits + misses):.1f}%")
print(f"notification reads from cache:  {n_hits:.0f} of {n_hits + n_misses:.0f} = {100 * n_hits / (n_hits + n_misses):.1f}%")
saved = hits + 2 * n_hits
print(f"SQL statements run: {queries:.0f} (writes included); saved by cache hits: {saved:.0f} "
      f"(1 per profile hit, 2 per notifications hit) = {100 * saved / (saved + queries):.0f}% of the database work")
