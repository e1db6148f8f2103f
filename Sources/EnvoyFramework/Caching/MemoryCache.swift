import Foundation
import Synchronization

/// An in-process `CacheProvider` with per-entry TTL and a byte budget, evicting least-recently-used entries.
public final class MemoryCache: CacheProvider, CustomStringConvertible {
    /// `memory`.
    public var description: String { "memory" }

    private struct Entry {
        var value: [UInt8]
        var expires: ContinuousClock.Instant
        var lastUse: UInt64
        var cost: Int { value.count }
    }

    private struct State {
        var entries: [CacheKey: Entry] = [:]
        var bytes = 0
        var tick: UInt64 = 0
    }

    private let state = Mutex(State())
    private let maxBytes: Int

    /// A cache holding at most `maxBytes` of keys and values (64 MiB by default).
    public init(maxBytes: Int = 64 << 20) {
        self.maxBytes = maxBytes
    }

    /// The live value under `key`, refreshing its recency.
    public func get(_ key: CacheKey) -> [UInt8]? {
        let now = ContinuousClock.now
        return state.withLock { state in
            guard var entry = state.entries[key] else { return nil }
            guard entry.expires > now else {
                state.bytes -= entry.cost + Self.size(of: key)
                state.entries[key] = nil
                return nil
            }
            state.tick += 1
            entry.lastUse = state.tick
            state.entries[key] = entry
            return entry.value
        }
    }

    /// Stores `value` until `ttl` passes, evicting old entries if over budget.
    public func set(_ key: CacheKey, value: [UInt8], ttl: Duration) {
        let expires = ContinuousClock.now.advanced(by: ttl)
        state.withLock { state in
            if let old = state.entries[key] { state.bytes -= old.cost + Self.size(of: key) }
            state.tick += 1
            state.entries[key] = Entry(value: value, expires: expires, lastUse: state.tick)
            state.bytes += value.count + Self.size(of: key)
            if state.bytes > maxBytes { Self.evict(&state, to: maxBytes * 9 / 10) }
        }
    }

    /// Removes `key`.
    public func delete(_ key: CacheKey) {
        state.withLock { state in
            if let old = state.entries.removeValue(forKey: key) { state.bytes -= old.cost + Self.size(of: key) }
        }
    }

    /// The bytes a key takes.
    private static func size(of key: CacheKey) -> Int {
        key.cache.utf8.count + key.scope.utf8.count + key.rest.utf8.count
    }

    /// Bytes currently held (keys and values).
    public var byteCount: Int { state.withLock { $0.bytes } }

    /// Drops expired entries first, then the least recently used, until at most `target` bytes remain.
    private static func evict(_ state: inout State, to target: Int) {
        let now = ContinuousClock.now
        for (key, entry) in state.entries where entry.expires <= now {
            state.entries[key] = nil
            state.bytes -= entry.cost + Self.size(of: key)
        }
        guard state.bytes > target else { return }
        for (key, entry) in state.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            state.entries[key] = nil
            state.bytes -= entry.cost + Self.size(of: key)
            if state.bytes <= target { break }
        }
    }
}
