import EnvoyBackend
import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import EnvoyTestSupport
import Testing

@Suite("Cached responses show every write at once")
struct CachingHTTPTests {
    private let xCache = HTTPField.Name("X-Cache")!

    @Test("each notification write invalidates every cached query variant of that user, and only that user")
    func notificationWritesInvalidate() async throws {
        let stack = try TestStack { $0.rateLimitPolicies = [] }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let ann = try await client.signUp()
            let bob = try await client.signUp()
            let variants = [
                "/api/notifications/", "/api/notifications/?unread_only=true", "/api/notifications/?limit=1&offset=0",
            ]
            func read(_ token: String) async throws -> [String: [String: Any]] {
                var pages: [String: [String: Any]] = [:]
                for uri in variants { pages[uri] = try await client.send(.get, uri, token: token).json() }
                return pages
            }
            func warm(_ token: String) async throws {
                for uri in variants {
                    _ = try await client.send(.get, uri, token: token)
                    #expect(try await client.send(.get, uri, token: token).headers[xCache] == "HIT")
                }
            }
            try await warm(ann)
            try await warm(bob)

            let created = try await client.send(
                .post, "/api/notifications/", json: #"{"title":"Hello","message":"First"}"#, token: ann)
            #expect(created.status == .created)
            let id = try #require(try created.json()["id"] as? String)
            var pages = try await read(ann)
            for uri in variants { #expect((pages[uri]?["notifications"] as? [Any])?.count == 1, "\(uri)") }
            #expect(pages["/api/notifications/"]?["unread_count"] as? Int == 1)
            #expect(try await client.send(.get, "/api/notifications/", token: bob).headers[xCache] == "HIT")

            try await warm(ann)
            #expect(try await client.send(.put, "/api/notifications/\(id)/read", token: ann).status == .ok)
            pages = try await read(ann)
            #expect(pages["/api/notifications/"]?["unread_count"] as? Int == 0)
            #expect((pages["/api/notifications/?unread_only=true"]?["notifications"] as? [Any])?.count == 0)

            _ = try await client.send(
                .post, "/api/notifications/", json: #"{"title":"Two","message":"Second","type":"warning"}"#, token: ann)
            try await warm(ann)
            let readAll = try await client.send(.put, "/api/notifications/read-all", token: ann)
            #expect(try readAll.json()["updated"] as? Int == 1)
            #expect(try await client.send(.get, "/api/notifications/", token: ann).json()["unread_count"] as? Int == 0)

            try await warm(ann)
            #expect(try await client.send(.delete, "/api/notifications/\(id)", token: ann).status == .noContent)
            pages = try await read(ann)
            #expect((pages["/api/notifications/"]?["notifications"] as? [Any])?.count == 1)

            // Another user's notification is invisible and untouchable.
            #expect(try await client.send(.delete, "/api/notifications/\(id)", token: bob).status == .notFound)
            #expect(try await client.send(.put, "/api/notifications/\(id)/read", token: bob).status == .notFound)
        }
    }

    @Test("a plan change (from billing) invalidates the cached profile")
    func planChangeInvalidates() async throws {
        let stack = try TestStack { $0.rateLimitPolicies = [] }
        let backend = try await stack.backend()
        try await backend.application().test(.ahc(.http)) { client in
            let token = try await client.signUp()
            let userID = try #require(
                try await client.send(.get, "/v1/user/profile", token: token).json()["id"] as? String)
            #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "HIT")
            try await backend.changePlan(userID: userID, to: "premium")
            let after = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(after.headers[xCache] == "MISS")
            #expect(try after.json()["plan"] as? String == "premium")
        }
    }

    @Test("a cache hit touches no database: the query counter in /metrics does not move")
    func hitsSkipTheDatabase() async throws {
        let stack = try TestStack { $0.rateLimitPolicies = [] }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let token = try await client.signUp()
            _ = try await client.send(.get, "/v1/user/profile", token: token)
            _ = try await client.send(.get, "/api/notifications/", token: token)
            func appQueries() async throws -> Double {
                let metrics = try await client.send(.get, "/metrics").text
                let line = try #require(
                    metrics.split(separator: "\n").first { $0.hasPrefix("envoy_db_queries_total{component=\"app\"}") })
                return try #require(Double(line.split(separator: " ").last ?? ""))
            }
            let before = try await appQueries()
            for _ in 0..<20 {
                #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "HIT")
                #expect(try await client.send(.get, "/api/notifications/", token: token).headers[xCache] == "HIT")
            }
            #expect(try await appQueries() == before)
            let metrics = try await client.send(.get, "/metrics").text
            #expect(metrics.contains(#"envoy_cache_requests_total{cache="profile",result="hit"} 20"#))
            #expect(metrics.contains(#"envoy_http_requests_total{route="/v1/user/profile",method="GET",status="200"}"#))
            #expect(metrics.contains(#"envoy_queue_tasks{queue="email",state="ready"}"#))
        }
    }

    @Test("a custom CacheProvider and Mailer replace the embedded ones by conforming to one protocol each")
    func customProviders() async throws {
        let cache = RecordingCache()
        let mailer = RecordingMailer()
        let stack = try TestStack()
        let backend = try await stack.backend(providers: .init(cache: cache, mailer: mailer))
        // The start-up summary names what is wired, not what the environment suggests.
        #expect(backend.summary["cache"] == "RecordingCache")
        #expect(backend.summary["mailer"] == "RecordingMailer")
        #expect(backend.summary["queue"] == "sqlite" || backend.summary["queue"] == "postgres")
        #expect(backend.summary["ratelimit.store"] == "memory")
        let app = backend.application()
        try await app.test(.ahc(.http)) { client in
            let token = try await client.signUp(email: "carol@example.com")
            _ = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "HIT")
            #expect(cache.operations.withLock { $0 } > 0)
            #expect(await eventually { mailer.sent.withLock { $0.count } == 1 })
            #expect(mailer.sent.withLock { $0.first?.to } == ["carol@example.com"])
            #expect(stack.outbox().isEmpty)
        }
    }

    @Test("a cache that fails answers BYPASS from the database, never an error")
    func failingCacheBypasses() async throws {
        let stack = try TestStack()
        let app = try await stack.backend(providers: .init(cache: BrokenCache())).application()
        try await app.test(.ahc(.http)) { client in
            let token = try await client.signUp()
            let response = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(response.status == .ok)
            #expect(response.headers[xCache] == "BYPASS")
            let update = try await client.send(.put, "/v1/user/profile", json: #"{"name":"Ann B"}"#, token: token)
            #expect(update.status == .ok)
            #expect(try await client.send(.get, "/v1/user/profile", token: token).json()["name"] as? String == "Ann B")
        }
    }
}

final class RecordingCache: CacheProvider {
    let inner = MemoryCache()
    let operations = Mutex(0)
    func get(_ key: CacheKey) async throws -> [UInt8]? {
        operations.withLock { $0 += 1 }
        return inner.get(key)
    }
    func set(_ key: CacheKey, value: [UInt8], ttl: Duration) async throws {
        operations.withLock { $0 += 1 }
        inner.set(key, value: value, ttl: ttl)
    }
    func delete(_ key: CacheKey) async throws { inner.delete(key) }
}

struct BrokenCache: CacheProvider {
    struct Down: Error {}
    func get(_ key: CacheKey) async throws -> [UInt8]? { throw Down() }
    func set(_ key: CacheKey, value: [UInt8], ttl: Duration) async throws { throw Down() }
    func delete(_ key: CacheKey) async throws { throw Down() }
}

final class RecordingMailer: Mailer {
    let sent = Mutex([EmailMessage]())
    func send(_ message: EmailMessage) async throws -> MailReceipt {
        sent.withLock { $0.append(message) }
        return MailReceipt(messageID: "test-\(UUID())")
    }
}
