import Tracing
import Foundation
import Logging
import Metrics
import Synchronization

/// How a response was served, as the `X-Cache` header says.
public enum CacheStatus: String, Sendable {
    /// Served from the cache.
    case hit = "HIT"
    /// Loaded from the database and stored.
    case miss = "MISS"
    /// The cache was unreachable; loaded from the database and not stored.
    case bypass = "BYPASS"
}

/// Cache-aside for one kind of value (a profile, a notifications page), grouped by scope (a user).
///
/// Invalidation is race-free by generation: entries live under `(name, scope, generation:variant)`, and
/// invalidating a scope gives it a fresh random generation. A read that loaded pre-write data can only
/// store it under the generation it started with, which no read after the write will ask for again.
public final class ScopedCache<Value: Codable & Sendable>: Sendable {
    private let provider: any CacheProvider
    private let name: String
    private let ttl: Duration
    private let schemaVersion: Int
    /// What every entry starts with: `v{schemaVersion}` and a newline, then the value's JSON.
    private let header: [UInt8]
    private let logger: Logger
    /// Outage warnings, at most 5 lines a second per cache however many requests bypass.
    private let outageLog: SampledLogger
    private let loads = SingleFlight<CacheKey, Entry>()
    private let newGenerations = SingleFlight<String, String>()
    private let hits: Counter
    private let misses: Counter
    private let bypasses: Counter
    private let invalidations: Counter
    private let failedInvalidations: Counter
    /// Scopes whose invalidation could not reach the provider: read through (BYPASS) until it can.
    private let pending = Mutex(Set<String>())

    /// A cache named `name` (used in keys and metrics) holding entries for `ttl` (plus up to 10% jitter).
    /// Bump `schemaVersion` when `Value`'s shape changes; old entries are then ignored, never misread.
    public init(
        name: String, provider: any CacheProvider, ttl: Duration, schemaVersion: Int = 1, logger: Logger,
        metrics: any MetricsFactory
    ) {
        self.provider = provider
        self.name = name
        self.ttl = ttl
        self.schemaVersion = schemaVersion
        self.header = Array("v\(schemaVersion)\n".utf8)
        self.logger = logger
        self.outageLog = SampledLogger(logger: logger, perSecond: 5)
        self.hits = Counter(
            label: "envoy_cache_requests_total", dimensions: [("cache", name), ("result", "hit")], factory: metrics)
        self.misses = Counter(
            label: "envoy_cache_requests_total", dimensions: [("cache", name), ("result", "miss")], factory: metrics)
        self.bypasses = Counter(
            label: "envoy_cache_requests_total", dimensions: [("cache", name), ("result", "bypass")], factory: metrics)
        self.invalidations = Counter(
            label: "envoy_cache_invalidations_total", dimensions: [("cache", name)], factory: metrics)
        self.failedInvalidations = Counter(
            label: "envoy_cache_invalidation_failures_total", dimensions: [("cache", name)], factory: metrics)
    }

    /// The value for `scope`/`variant`: from the cache, or from `load` (once per instance for concurrent misses).
    public func fetch(scope: String, variant: String = "", load: @Sendable () async throws -> Value)
        async throws -> (Value, CacheStatus)
    {
        let (entry, status) = try await fetchEntry(scope: scope, variant: variant, load: load)
        if let value = entry.value { return (value, status) }
        if let value = decode(entry.json) { return (value, status) }
        // Stored by this schema version yet unreadable (a Codable change without a version bump): load afresh.
        return (try await load(), .bypass)
    }

    /// The value's JSON (as `JSONBody.encode` writes it) for `scope`/`variant`: on a hit, the stored bytes as
    /// they are — nothing decoded or encoded again — so a cached response costs no JSON work.
    /// `prefetched`: `readAhead(scope:variant:)` made earlier in this request (by the rate limiter, in its round
    /// trip); it is used instead of reading again when it is for these keys.
    public func fetchJSON(
        scope: String, variant: String = "", prefetched: PrefetchedRead? = nil,
        load: @Sendable () async throws -> Value
    ) async throws -> (json: ArraySlice<UInt8>, status: CacheStatus) {
        try await Traces.span("cache \(name)") { span in
            let (entry, status) = try await fetchEntry(
                scope: scope, variant: variant, prefetched: prefetched, load: load)
            span?.attributes["envoy.cache.result"] = status.rawValue
            return (entry.json, status)
        }
    }

    /// The read a fetch of `scope`/`variant` starts with (the scope's generation, then the entry under it), for
    /// sending ahead with the rate limiter's call; hand its result to `fetchJSON(scope:variant:prefetched:load:)`.
    public func readAhead(scope: String, variant: String = "") -> ChainedRead {
        ChainedRead(provider: provider, first: generationKey(scope), suffix: ":" + variant)
    }

    /// A value's JSON, and the value itself when it was just loaded.
    private struct Entry: Sendable {
        var json: ArraySlice<UInt8>
        var value: Value?
    }

    private func fetchEntry(
        scope: String, variant: String, prefetched: PrefetchedRead? = nil, load: @Sendable () async throws -> Value
    ) async throws -> (Entry, CacheStatus) {
        let key: CacheKey
        var prefetched = prefetched
        do {
            if pending.withLock({ $0.contains(scope) }) {
                try await publishNewGeneration(scope)
                pending.withLock { _ = $0.remove(scope) }
                prefetched = nil  // read under the generation just replaced
            }
            let read = try await read(scope: scope, variant: variant, prefetched: prefetched)
            if let bytes = read.entry, let json = payload(of: bytes) {
                hits.increment()
                return (Entry(json: json), .hit)
            }
            key = read.key.name
        } catch {
            bypasses.increment()
            outageLog.warning(
                "cache unavailable, reading through", metadata: ["cache": "\(name)", "error": "\(error)"])
            let value = try await load()
            return (Entry(json: try JSONBody.encode(value)[...], value: value), .bypass)
        }
        misses.increment()
        let entry = try await loads.run(key) {
            let value = try await load()
            let stored = try storedBytes(of: value)
            do {
                try await provider.set(key, value: stored, ttl: jittered(ttl))
            } catch {
                outageLog.warning("cache store failed", metadata: ["cache": "\(name)", "error": "\(error)"])
            }
            return Entry(json: stored[header.count...], value: value)
        }
        return (entry, .miss)
    }

    /// Makes every entry of `scope` unreachable; reads after this returns load afresh.
    /// If the provider cannot be reached, this instance reads `scope` through the database until a later
    /// attempt succeeds, so it never serves the pre-write entry. (Other instances: see the README.)
    public func invalidate(scope: String) async {
        invalidations.increment()
        do {
            try await publishNewGeneration(scope)
            pending.withLock { _ = $0.remove(scope) }
        } catch {
            failedInvalidations.increment()
            pending.withLock { _ = $0.insert(scope) }
            outageLog.warning(
                "cache invalidation deferred; reading through until it succeeds",
                metadata: ["cache": "\(name)", "error": "\(error)"])
        }
    }

    /// Stores `value` for `scope`/`variant`.
    public func store(_ value: Value, scope: String, variant: String = "") async throws {
        let key = generationKey(scope).sibling("\(try await generation(of: scope)):\(variant)")
        try await provider.set(key, value: try storedBytes(of: value), ttl: jittered(ttl))
    }

    /// The cached value for `scope`/`variant`, or nil.
    public func cached(scope: String, variant: String = "") async throws -> Value? {
        if pending.withLock({ $0.contains(scope) }) { return nil }
        guard let bytes = try await read(scope: scope, variant: variant).entry, let json = payload(of: bytes) else {
            return nil
        }
        return decode(json)
    }

    /// The scope's generation and the entry under it, in one provider round trip when the scope has a generation
    /// (the common case); a scope without one gets a fresh generation, under which nothing is stored yet.
    /// `prefetched`, when it read the same keys, stands for the first round trip.
    private func read(scope: String, variant: String, prefetched: PrefetchedRead? = nil) async throws -> (
        key: EntryKey, entry: [UInt8]?
    ) {
        let chained = readAhead(scope: scope, variant: variant)
        let found: ChainedRead.Found
        if let prefetched, prefetched.read.reads(sameKeysAs: chained) {
            found = try prefetched.result.get()
        } else {
            found = try await chained.run()
        }
        if let generation = found.first {
            return (EntryKey(chained, generation: String(decoding: generation, as: UTF8.self)), found.second)
        }
        let key = EntryKey(chained, generation: try await generation(of: scope))
        return (key, try await provider.get(key.name))
    }

    /// The key of an entry, `(name, scope, generation:variant)`, put together only where it is used (a hit does
    /// not).
    private struct EntryKey {
        let first: CacheKey
        let generation: String
        let suffix: String

        init(_ read: ChainedRead, generation: String) {
            (first, self.generation, suffix) = (read.first, generation, read.suffix)
        }

        var name: CacheKey { first.sibling(generation + suffix) }
    }

    /// Tries again every invalidation that could not reach the provider; returns how many are still pending.
    @discardableResult
    public func retryPendingInvalidations() async -> Int {
        for scope in pending.withLock({ Array($0) }) {
            do {
                try await publishNewGeneration(scope)
                pending.withLock { _ = $0.remove(scope) }
            } catch {
                break
            }
        }
        return pending.withLock { $0.count }
    }

    private func publishNewGeneration(_ scope: String) async throws {
        try await provider.set(generationKey(scope), value: Array(Self.newGeneration().utf8), ttl: .seconds(86_400 * 7))
    }

    private func generation(of scope: String) async throws -> String {
        if let bytes = try await provider.get(generationKey(scope)) { return String(decoding: bytes, as: UTF8.self) }
        // Concurrent first readers share one fresh generation, so they share one load too. (Another instance may
        // race us with its own; the loser's entries are merely orphaned, never stale.)
        return try await newGenerations.run(scope) {
            if let bytes = try await provider.get(generationKey(scope)) {
                return String(decoding: bytes, as: UTF8.self)
            }
            let fresh = Self.newGeneration()
            try await provider.set(generationKey(scope), value: Array(fresh.utf8), ttl: .seconds(86_400 * 7))
            return fresh
        }
    }

    private func generationKey(_ scope: String) -> CacheKey { CacheKey(cache: name, scope: scope, rest: "generation") }

    private static func newGeneration() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    /// The entry stored for `value`.
    private func storedBytes(of value: Value) throws -> [UInt8] {
        header + (try JSONBody.encode(value))
    }

    /// The value in an entry's JSON, or nil if it no longer decodes as `Value`.
    private func decode(_ json: ArraySlice<UInt8>) -> Value? {
        try? JSONDecoder().decode(Value.self, from: Data(json))
    }

    /// The JSON of an entry stored under this schema version; nil for any other entry (never misread).
    private func payload(of entry: [UInt8]) -> ArraySlice<UInt8>? {
        guard entry.count > header.count, entry.starts(with: header) else { return nil }
        return entry[header.count...]
    }

    private func jittered(_ ttl: Duration) -> Duration {
        ttl + ttl * Double.random(in: 0..<0.1)
    }
}
