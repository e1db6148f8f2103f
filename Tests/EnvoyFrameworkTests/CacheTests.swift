import EnvoyFramework
import Logging
import Metrics
import Synchronization
import Testing

@Suite("Caching: memory provider, cache-aside with race-free invalidation, single flight")
struct CacheTests {
    let logger = Logger(label: "test")

    @Test("entries expire after their TTL, and the byte budget evicts the least recently used")
    func memoryCache() async throws {
        func key(_ rest: String) -> CacheKey { CacheKey(cache: "test", scope: "s", rest: rest) }
        let cache = MemoryCache(maxBytes: 10_000)
        cache.set(key("short"), value: [1], ttl: .milliseconds(50))
        #expect(cache.get(key("short")) == [1])
        try await Task.sleep(for: .milliseconds(80))
        #expect(cache.get(key("short")) == nil)

        cache.set(key("keep"), value: [UInt8](repeating: 7, count: 1000), ttl: .seconds(60))
        for index in 0..<50 {
            _ = cache.get(key("keep"))
            cache.set(key("filler\(index)"), value: [UInt8](repeating: 0, count: 1000), ttl: .seconds(60))
        }
        #expect(cache.byteCount <= 10_000)
        #expect(cache.get(key("keep"))?.count == 1000)
        #expect(cache.get(key("filler0")) == nil)
    }

    @Test("a read that loaded pre-write data cannot put it back after the write's invalidation")
    func raceFreeInvalidation() async throws {
        let cache = ScopedCache<String>(
            name: "t", provider: MemoryCache(), ttl: .seconds(60), logger: logger, metrics: NOOPMetricsHandler.instance)
        let database = Shared("old")
        let loadStarted = AsyncStream.makeStream(of: Void.self)
        let writeDone = AsyncStream.makeStream(of: Void.self)
        // The slow reader reads the database, then stalls until the writer has finished, then stores.
        async let slowRead: (String, CacheStatus) = cache.fetch(scope: "u") {
            let value = database.value.withLock { $0 }
            loadStarted.continuation.yield()
            for await _ in writeDone.stream { break }
            return value
        }
        for await _ in loadStarted.stream { break }
        database.value.withLock { $0 = "new" }
        await cache.invalidate(scope: "u")
        writeDone.continuation.yield()
        let (stale, _) = try await slowRead
        #expect(stale == "old")
        let (fresh, status) = try await cache.fetch(scope: "u") { database.value.withLock { $0 } }
        #expect(fresh == "new")
        #expect(status == .miss)
        #expect(try await cache.fetch(scope: "u") { "unused" } == ("new", .hit))
    }

    @Test("100 concurrent misses on one key load once")
    func singleFlight() async throws {
        let cache = ScopedCache<Int>(
            name: "t", provider: MemoryCache(), ttl: .seconds(60), logger: logger, metrics: NOOPMetricsHandler.instance)
        let loads = Shared(0)
        let values = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    try await cache.fetch(scope: "u") {
                        loads.value.withLock { $0 += 1 }
                        try await Task.sleep(for: .milliseconds(100))
                        return 42
                    }.0
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(values.count == 100 && values.allSatisfy { $0 == 42 })
        #expect(loads.value.withLock { $0 } == 1)
    }

    @Test("entries written with another schema version are ignored, never misread")
    func schemaVersion() async throws {
        let provider = MemoryCache()
        let v1 = ScopedCache<[String: Int]>(
            name: "s", provider: provider, ttl: .seconds(60), schemaVersion: 1, logger: logger,
            metrics: NOOPMetricsHandler.instance)
        _ = try await v1.fetch(scope: "u") { ["a": 1] }
        let v2 = ScopedCache<[String: String]>(
            name: "s", provider: provider, ttl: .seconds(60), schemaVersion: 2, logger: logger,
            metrics: NOOPMetricsHandler.instance)
        let (value, status) = try await v2.fetch(scope: "u") { ["a": "one"] }
        #expect(value == ["a": "one"])
        #expect(status == .miss)
    }

    @Test("a hit serves the stored JSON byte for byte, the same bytes the miss answered and `fetch` decodes")
    func storedJSON() async throws {
        let cache = ScopedCache<[String: String]>(
            name: "j", provider: MemoryCache(), ttl: .seconds(60), logger: logger,
            metrics: NOOPMetricsHandler.instance)
        let loads = Mutex(0)
        let load: @Sendable () async throws -> [String: String] = {
            loads.withLock { $0 += 1 }
            return ["url": "https://example.com/a", "b": "2", "a": "1"]
        }
        let miss = try await cache.fetchJSON(scope: "u", load: load)
        let hit = try await cache.fetchJSON(scope: "u", load: load)
        #expect(miss.status == .miss)
        #expect(hit.status == .hit)
        #expect(Array(hit.json) == Array(miss.json))
        #expect(String(decoding: hit.json, as: UTF8.self) == #"{"a":"1","b":"2","url":"https://example.com/a"}"#)
        #expect(
            try await cache.fetch(scope: "u", load: load) == (
                ["url": "https://example.com/a", "b": "2", "a": "1"], .hit
            ))
        #expect(loads.withLock { $0 } == 1)
    }

    @Test("an invalidation that cannot reach the provider is not lost: reads bypass until it lands")
    func deferredInvalidation() async throws {
        let provider = FlakyCache()
        let cache = ScopedCache<String>(
            name: "t", provider: provider, ttl: .seconds(60), logger: logger, metrics: NOOPMetricsHandler.instance)
        _ = try await cache.fetch(scope: "u") { "old" }
        #expect(try await cache.fetch(scope: "u") { "unused" }.1 == .hit)
        provider.down.withLock { $0 = true }
        await cache.invalidate(scope: "u")
        #expect(try await cache.fetch(scope: "u") { "new" } == ("new", .bypass))
        provider.down.withLock { $0 = false }
        // Back up: the deferred invalidation lands first, so the old entry is never served.
        #expect(try await cache.fetch(scope: "u") { "new" } == ("new", .miss))
        #expect(try await cache.fetch(scope: "u") { "unused" } == ("new", .hit))
    }
}

final class FlakyCache: CacheProvider {
    struct Down: Error {}
    let inner = MemoryCache()
    let down = Mutex(false)
    func get(_ key: CacheKey) async throws -> [UInt8]? {
        if down.withLock({ $0 }) { throw Down() }
        return inner.get(key)
    }
    func set(_ key: CacheKey, value: [UInt8], ttl: Duration) async throws {
        if down.withLock({ $0 }) { throw Down() }
        inner.set(key, value: value, ttl: ttl)
    }
    func delete(_ key: CacheKey) async throws {
        if down.withLock({ $0 }) { throw Down() }
        inner.delete(key)
    }
}

final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}
