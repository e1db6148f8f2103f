// The CPU side of a profile request, piece by piece: RESP encode/decode, the limiter's decision, JWT verification,
// a cache hit and a profile's JSON. Thresholds (Thresholds/) make a regression in time or allocations visible.
// Names have no spaces or slashes: the tool writes threshold files with those replaced but reads them verbatim.
import Benchmark
import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import Foundation
import Logging
import Metrics

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        thresholds: [
            // Static thresholds (Thresholds/) hold each metric's p90. Allocations are exact from run to run: 2 %
            // more (one allocation more per operation shows as 5–25 % on these) is a regression.
            .mallocCountTotal: .init(relative: [.p90: 2.0]),
            // Time on a shared 2-core machine is not exact (and the CPU clock ticks in 10 ms): half as slow again is.
            .wallClock: .init(relative: [.p90: 50.0]),
        ]
    )

    let limiterScript: [RedisArgument] = [
        "EVALSHA", "0123456789abcdef0123456789abcdef01234567", 2, "{envoy:rl}:user:42:authenticated",
        "{envoy:rl}:user:42:burst", "100000", "60", "1764601200.123", "1",
    ]
    Benchmark("RESP-encode-limiter-EVALSHA-9-arguments") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(RESPEncoder.encode(limiterScript))
        }
    }

    // 50 replies of the kinds the hot path reads: the chained cache read's array and the limiter's integers.
    let replies = Array(
        String(
            repeating: "*2\r\n$5\r\nabc12\r\n$300\r\n\(String(repeating: "x", count: 300))\r\n:1\r\n+OK\r\n",
            count: 50
        ).utf8)
    Benchmark("RESP-decode-150-replies") { benchmark in
        for _ in benchmark.scaledIterations {
            let reader = RESPReader(maxReplyBytes: 1 << 20)
            try replies.withUnsafeBytes { try reader.feed($0) }
            while let value = try reader.next() { blackHole(value) }
        }
    }

    let policies = [
        RateLimitPolicy(
            name: "authenticated", limit: 1_000_000_000, window: 60, key: .user, match: .init(authenticated: true))
    ]
    let store = MemoryRateLimitStore()
    let checks = policies.map { RateLimitCheck(policy: $0, key: "user:42") }
    Benchmark("Limiter-decision-embedded-sliding-log") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(store.acquire(checks))
        }
    }

    let secret = "a-benchmark-secret-of-at-least-thirty-two-bytes"
    Benchmark("JWT-verify-HS256-signature-and-claims") { (benchmark: Benchmark, setup: SignedToken) in
        for _ in benchmark.scaledIterations {
            blackHole(try await setup.tokens.verify(setup.token))
        }
    } setup: {
        let tokens = await AccessTokens(secret: secret, lifetime: .seconds(3600), remembering: 0)
        return SignedToken(tokens: tokens, token: try await tokens.issue(userID: "user-42"))
    }

    Benchmark("JWT-verify-token-seen-before") { (benchmark: Benchmark, setup: SignedToken) in
        for _ in benchmark.scaledIterations {
            blackHole(try await setup.tokens.verify(setup.token))
        }
    } setup: {
        let tokens = await AccessTokens(secret: secret, lifetime: .seconds(3600))
        let token = try await tokens.issue(userID: "user-42")
        _ = try await tokens.verify(token)
        return SignedToken(tokens: tokens, token: token)
    }

    let profileJSON = Data(
        #"""
        {"id":"3f2c9a40-5b8e-4d7a-9c1e-2a6b8d0e4f11","email":"ada@example.com","name":"Ada Lovelace",
         "company":"Analytical Engines Ltd","job_title":"Engineer","timezone":"Europe/London","plan":"pro",
         "email_verified":true,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-11-30T12:00:00Z"}
        """#.utf8)
    let profile = try! JSONDecoder().decode(UserProfile.self, from: profileJSON)
    Benchmark("JSON-encode-profile") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try JSONBody.encode(profile))
        }
    }

    Benchmark("Cache-hit-fetchJSON-memory-provider") {
        (benchmark: Benchmark, cache: ScopedCache<UserProfile>) in
        for _ in benchmark.scaledIterations {
            blackHole(try await cache.fetchJSON(scope: "user-42") { profile })
        }
    } setup: {
        let cache = ScopedCache<UserProfile>(
            name: "profile", provider: MemoryCache(), ttl: .seconds(3600), logger: Logger(label: "benchmark"),
            metrics: NOOPMetricsHandler.instance)
        _ = try await cache.fetchJSON(scope: "user-42") { profile }
        return cache
    }
}

/// A token and the issuer that verifies it.
struct SignedToken {
    var tokens: AccessTokens
    var token: String
}
