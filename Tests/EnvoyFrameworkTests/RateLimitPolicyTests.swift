import EnvoyFramework
import EnvoyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics
import Synchronization
import Testing

@Suite("Rate-limit policies: GCRA, shadow mode, keys, failure modes, the memory of refusals")
struct RateLimitPolicyTests {

    @Test("GCRA admits a burst of `limit`, then one request per window/limit, smoothly")
    func gcra() {
        let clock = ManualClock(2_000_000.0)
        let store = MemoryRateLimitStore(now: clock.now)
        let policy = RateLimitPolicy(name: "g", limit: 10, window: 10, key: .global, match: .init(), algorithm: .gcra)
        let check = [RateLimitCheck(policy: policy, key: "global")]
        for expected in (0..<10).reversed() {
            let decision = store.acquire(check)
            #expect(decision.admitted)
            #expect(decision.outcomes[0].remaining == expected)
        }
        let rejected = store.acquire(check)
        #expect(!rejected.admitted)
        #expect(abs(rejected.outcomes[0].resetAfter - 1) < 1e-6)
        #expect(RateLimitHeaders.retryAfter(rejected) == 1)
        clock.advance(0.5)
        #expect(!store.acquire(check).admitted)
        clock.advance(0.5)
        #expect(store.acquire(check).admitted)
        #expect(!store.acquire(check).admitted)
        clock.advance(5)
        for _ in 0..<5 { #expect(store.acquire(check).admitted) }
        #expect(!store.acquire(check).admitted)
    }

    @Test("a shadow policy never rejects and is not charged when it would have; enforced ones still are")
    func shadow() {
        let clock = ManualClock(2_000_000.0)
        let store = MemoryRateLimitStore(now: clock.now)
        let trial = RateLimitPolicy(name: "trial", limit: 2, window: 60, key: .global, match: .init(), shadow: true)
        let real = RateLimitPolicy(name: "real", limit: 5, window: 60, key: .global, match: .init())
        let checks = [RateLimitCheck(policy: trial, key: "global"), RateLimitCheck(policy: real, key: "global")]
        var shadowHits = 0
        for _ in 0..<5 {
            let decision = store.acquire(checks)
            #expect(decision.admitted)
            shadowHits += decision.shadowViolated.count
        }
        #expect(shadowHits == 3)
        let sixth = store.acquire(checks)
        #expect(!sixth.admitted)
        #expect(sixth.violated.map(\.policy.name) == ["real"])
    }

    @Test("RATE_LIMITS_FILE JSON: defaults for the optional fields, header and global keys, bad values refused")
    func decoding() throws {
        let json = """
            [{"name": "api", "limit": 1000, "window": 60, "key": "header:X-Api-Key", "algorithm": "gcra",
              "failure_mode": "closed", "shadow": true},
             {"name": "all", "limit": 5, "window": 1, "key": "global", "match": {"method": "GET", "route": "/x/{id}"}}]
            """
        let policies = try JSONDecoder().decode([RateLimitPolicy].self, from: Data(json.utf8))
        #expect(policies[0].key == .header("X-Api-Key") && policies[0].algorithm == .gcra)
        #expect(policies[0].failureMode == .closed && policies[0].shadow)
        #expect(policies[1].algorithm == .slidingLog && policies[1].failureMode == .local && !policies[1].shadow)
        #expect(policies[1].match == RateLimitMatch(method: "GET", route: "/x/{id}"))
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(
                [RateLimitPolicy].self, from: Data(#"[{"name":"x","limit":1,"window":1,"key":"cookie"}]"#.utf8))
        }
        #expect(throws: RateLimitPolicyError.self) {
            try RateLimitPolicy(name: "big", limit: 1_000_000, window: 1, key: .global, match: .init()).validate()
        }
    }

    /// A router with the limiter in front of `GET /items/{id}`, on `store`.
    func app(_ policies: [RateLimitPolicy], store: any RateLimitStore) -> some ApplicationProtocol {
        let router = Router(context: LimitedContext.self)
        router.add(middleware: ProblemMiddleware())
        router.add(
            middleware: RateLimitMiddleware(
                policies: policies, store: store, logger: Logger(label: "t"), metrics: NOOPMetricsHandler.instance))
        router.get("/items/{id}") { _, _ in "ok" }
        return Application(router: router)
    }

    @Test("routes are matched by template: /items/1 and /items/2 share one policy; API keys are counted apart")
    func templatesAndHeaders() async throws {
        let policies = [
            RateLimitPolicy(
                name: "items", limit: 3, window: 60, key: .global, match: .init(method: "GET", route: "/items/{id}")),
            RateLimitPolicy(name: "per-key", limit: 2, window: 60, key: .header("X-Api-Key"), match: .init()),
        ]
        try await app(policies, store: MemoryRateLimitStore()).test(.router) { client in
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<4 {
                let headers: HTTPFields = [.init("X-Api-Key")!: index < 2 ? "key-a" : "key-b"]
                statuses.append(try await client.execute(uri: "/items/\(index)", method: .get, headers: headers).status)
            }
            #expect(statuses == [.ok, .ok, .ok, .tooManyRequests])
            let third = try await client.execute(uri: "/items/9", method: .get, headers: [.init("X-Api-Key")!: "key-a"])
            #expect(third.status == .tooManyRequests)
            #expect(!(third.headers[.rateLimitPolicy] ?? "").contains("key-a"))
        }
    }

    @Test("failure modes when the store is down: local keeps limiting, open admits, closed answers 503")
    func failureModes() async throws {
        let local = RateLimitPolicy(name: "l", limit: 2, window: 60, key: .global, match: .init())
        try await app([local], store: FailingStore()).test(.router) { client in
            let statuses = try await (0..<3).asyncMap { _ in
                try await client.execute(uri: "/items/1", method: .get).status
            }
            #expect(statuses == [.ok, .ok, .tooManyRequests])
        }
        var open = local
        open.failureMode = .open
        try await app([open], store: FailingStore()).test(.router) { client in
            let statuses = try await (0..<3).asyncMap { _ in
                try await client.execute(uri: "/items/1", method: .get).status
            }
            #expect(statuses == [.ok, .ok, .ok])
        }
        var closed = local
        closed.failureMode = .closed
        try await app([closed], store: FailingStore()).test(.router) { client in
            let response = try await client.execute(uri: "/items/1", method: .get)
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.contentType] == "application/problem+json")
        }
    }

    @Test("a refused key is answered from memory until its quota frees: the store is not asked again")
    func deniedKeysSkipTheStore() async throws {
        let store = CountingStore()
        let policy = RateLimitPolicy(name: "p", limit: 2, window: 60, key: .global, match: .init())
        try await app([policy], store: store).test(.router) { client in
            for _ in 0..<10 { _ = try await client.execute(uri: "/items/1", method: .get) }
            let refused = try await client.execute(uri: "/items/1", method: .get)
            #expect(refused.status == .tooManyRequests)
            #expect(Int(refused.headers[.retryAfter] ?? "") ?? 0 > 55)
        }
        #expect(store.calls.withLock { $0 } == 3)
    }

    @Test("a route's cache read goes to the store with the decision and the handler uses it; none when refused or down")
    func readAhead() async throws {
        let cache = ScopedCache<String>(
            name: "item", provider: MemoryCache(), ttl: .seconds(60), logger: Logger(label: "t"),
            metrics: NOOPMetricsHandler.instance)
        let loads = Mutex(0)
        let policy = RateLimitPolicy(name: "p", limit: 3, window: 60, key: .global, match: .init())
        func app(store: any RateLimitStore) -> some ApplicationProtocol {
            let router = Router(context: LimitedContext.self)
            router.add(middleware: ProblemMiddleware())
            router.add(
                middleware: RateLimitMiddleware(
                    policies: [policy], store: store, logger: Logger(label: "t"), metrics: NOOPMetricsHandler.instance,
                    readAhead: { _, context in context.endpointPath == "/items/{id}" ? cache.readAhead(scope: "s") : nil
                    }
                ))
            router.get("/items/{id}") { _, context in
                let (_, status) = try await cache.fetchJSON(scope: "s", prefetched: context.prefetched) {
                    loads.withLock { $0 += 1 }
                    return "v"
                }
                return "\(status.rawValue) prefetched=\(context.prefetched != nil)"
            }
            router.get("/other") { _, context in "prefetched=\(context.prefetched != nil)" }
            return Application(router: router)
        }
        @Sendable func get(_ client: any TestClientProtocol, _ path: String) async throws -> String {
            let response = try await client.execute(uri: path, method: .get)
            return response.status == .ok ? String(buffer: response.body) : "\(response.status.code)"
        }
        try await app(store: MemoryRateLimitStore()).test(.router) { client in
            var answers: [String] = []
            for path in ["/items/1", "/items/2", "/other", "/items/1"] { answers.append(try await get(client, path)) }
            #expect(answers == ["MISS prefetched=true", "HIT prefetched=true", "prefetched=false", "429"])
        }
        #expect(loads.withLock { $0 } == 1)
        // The store is down: its failure mode decides, the handler reads for itself.
        try await app(store: FailingStore()).test(.router) { client in
            let answer = try await get(client, "/items/1")
            #expect(answer == "HIT prefetched=false")
        }
    }
}

struct LimitedContext: IdentifiedRequestContext, ReadAheadRequestContext {
    var coreContext: CoreRequestContextStorage
    var identity = RequestIdentity()
    var prefetched: PrefetchedRead?
    init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
}

struct FailingStore: RateLimitStore {
    struct Down: Error {}
    func acquire(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision { throw Down() }
}

final class CountingStore: RateLimitStore {
    let inner = MemoryRateLimitStore()
    let calls = Mutex(0)
    func acquire(_ checks: [RateLimitCheck]) async throws -> RateLimitDecision {
        calls.withLock { $0 += 1 }
        return inner.acquire(checks)
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
