import EnvoyBackend
import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite("Rate limiting through the HTTP API (embedded limiter)")
struct RateLimitHTTPTests {
    @Test("200 concurrent login attempts from one IP admit exactly 5; the rest get 429 with Retry-After")
    func concurrentLogins() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let statuses = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        try await client.send(
                            .post, "/v1/auth/login",
                            json: #"{"email":"user\#(index)@example.com","password":"wrong-password"}"#)
                    }
                }
                return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
            }
            let admitted = statuses.filter { $0.status != .tooManyRequests }
            let rejected = statuses.filter { $0.status == .tooManyRequests }
            #expect(admitted.count == 5)
            #expect(admitted.allSatisfy { $0.status == .unauthorized })
            #expect(rejected.count == 195)
            let sample = try #require(rejected.first)
            let retryAfter = try #require(sample.headers[.retryAfter].flatMap { Int($0) })
            #expect(retryAfter > 3500 && retryAfter <= 3600)
            #expect(sample.headers[.contentType] == "application/problem+json")
            #expect(try sample.json()["violated-policies"] as? [String] == ["login"])
            #expect(sample.headers[.init("X-RateLimit-Limit")!] == "5")
            #expect(sample.headers[.init("X-RateLimit-Remaining")!] == "0")
        }
    }

    @Test(
        "every limited response carries X-RateLimit-* and draft-10 RateLimit-Policy/RateLimit; /health is not limited")
    func headers() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let token = try await client.signUp()
            let before = Date().timeIntervalSince1970
            let response = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(response.headers[.init("X-RateLimit-Limit")!] == "100")
            #expect(response.headers[.init("X-RateLimit-Remaining")!] == "99")
            let after = Date().timeIntervalSince1970
            let reset = try #require(response.headers[.init("X-RateLimit-Reset")!].flatMap { Double($0) })
            #expect(reset >= (before + 60).rounded(.down) && reset <= (after + 60).rounded(.up))
            #expect(response.headers[.init("RateLimit-Policy")!] == #""authenticated";q=100;w=60"#)
            let field = try #require(response.headers[.init("RateLimit")!])
            let parsed = try StructuredFieldList(field)
            #expect(parsed.items.first?.name == "authenticated")
            #expect(parsed.items.first?.parameters["r"] == 99)
            #expect((parsed.items.first?.parameters["t"]).map { (59...60).contains($0) } == true)

            // Errors from a limited route carry the headers too.
            let notFound = try await client.send(.put, "/api/notifications/unknown/read", token: token)
            #expect(notFound.status == .notFound)
            #expect(notFound.headers[.init("X-RateLimit-Remaining")!] == "98")

            for _ in 0..<30 {
                let health = try await client.send(.get, "/health")
                #expect(health.status == .ok)
                #expect(health.headers[.init("X-RateLimit-Limit")!] == nil)
            }
        }
    }

    @Test("anonymous callers get 20 a minute; a spoofed X-Forwarded-For from an untrusted peer changes nothing")
    func anonymousAndSpoofing() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<25 {
                var headers = HTTPFields()
                headers[.init("X-Forwarded-For")!] = "203.0.113.\(index)"
                statuses.append(
                    try await client.execute(uri: "/v1/user/profile", method: .get, headers: headers).status)
            }
            #expect(statuses.prefix(20).allSatisfy { $0 == .unauthorized })
            #expect(statuses.suffix(5).allSatisfy { $0 == .tooManyRequests })
        }
    }

    @Test("behind a trusted proxy, X-Forwarded-For names the client, so two clients get separate quotas")
    func trustedProxy() async throws {
        let stack = try TestStack { $0.trustedProxies = [IPNetwork("127.0.0.0/8")!, IPNetwork("::1/128")!] }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            for client_ip in ["198.51.100.1", "198.51.100.2"] {
                var headers = HTTPFields()
                headers[.init("X-Forwarded-For")!] = client_ip
                var admitted = 0
                for _ in 0..<22
                where try await client.execute(uri: "/v1/user/profile", method: .get, headers: headers).status
                    != .tooManyRequests
                {
                    admitted += 1
                }
                #expect(admitted == 20, "\(client_ip)")
            }
        }
    }
}

extension RateLimitHTTPTests {
    @Test("behind a proxy that sets X-Forwarded-For, a client's own Forwarded header cannot pick its bucket")
    func forwardedBypass() async throws {
        let stack = try TestStack { $0.trustedProxies = [IPNetwork("127.0.0.0/8")!, IPNetwork("::1/128")!] }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            var admitted = 0
            for index in 0..<30 {
                var headers = HTTPFields()
                headers[.contentType] = "application/json"
                headers[.init("Forwarded")!] = "for=198.51.100.\(index)"  // the client's own, a new address each time
                headers[.init("X-Forwarded-For")!] = "203.0.113.7"  // what the proxy set
                let response = try await client.execute(
                    uri: "/v1/auth/login", method: .post, headers: headers,
                    body: ByteBuffer(string: #"{"email":"nobody@example.com","password":"wrong password"}"#))
                if response.status != .tooManyRequests { admitted += 1 }
            }
            #expect(admitted == 5, "the login policy allows 5 an hour per client")
        }
    }
}

/// A minimal parser for the structured-field lists the draft uses: `"name";k=int, …`.
struct StructuredFieldList {
    struct Item {
        var name: String
        var parameters: [String: Int]
    }

    var items: [Item] = []

    init(_ text: String) throws {
        for member in text.split(separator: ",") {
            let parts = member.trimmingCharacters(in: .whitespaces).split(separator: ";")
            guard let first = parts.first, first.hasPrefix("\""), first.hasSuffix("\""), first.count >= 2 else {
                throw StructuredFieldError()
            }
            var parameters: [String: Int] = [:]
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=")
                guard pair.count == 2, let value = Int(pair[1]), pair[0].allSatisfy({ $0.isLowercase }) else {
                    throw StructuredFieldError()
                }
                parameters[String(pair[0])] = value
            }
            items.append(Item(name: String(first.dropFirst().dropLast()), parameters: parameters))
        }
    }
}

struct StructuredFieldError: Error {}
