import EnvoyBackend
import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite("HTTP by the book: HEAD on every GET route, 405 with Allow for a known path")
struct HTTPConformanceTests {
    @Test("every response carries X-Request-Id: a new one, unless a trusted proxy sent a well-formed one; errors too")
    func requestIDs() async throws {
        let trusting = try TestStack { $0.trustedProxies = [IPNetwork("127.0.0.0/8")!, IPNetwork("::1/128")!] }
        try await trusting.backend().application().test(.ahc(.http)) { client in
            let plain = try await client.execute(uri: "/health", method: .get)
            let id = try #require(plain.headers[.xRequestID])
            #expect(UUID(uuidString: id) != nil, "\(id)")
            let again = try await client.execute(uri: "/health", method: .get)
            #expect(again.headers[.xRequestID] != id, "one per request")
            let kept = try await client.execute(
                uri: "/v1/user/profile", method: .get, headers: [.xRequestID: "lb-42.a:b_c"])
            #expect(kept.status == .unauthorized && kept.headers[.xRequestID] == "lb-42.a:b_c", "an error answer too")
            let unsafe = try await client.execute(uri: "/health", method: .get, headers: [.xRequestID: "two words"])
            #expect(unsafe.headers[.xRequestID] != "two words")
        }
        // A client that is not a trusted proxy cannot choose its id.
        try await TestStack().backend().application().test(.ahc(.http)) { client in
            let forged = try await client.execute(uri: "/health", method: .get, headers: [.xRequestID: "chosen"])
            #expect(forged.headers[.xRequestID].map { $0 != "chosen" && UUID(uuidString: $0) != nil } == true)
        }
    }

    @Test("HEAD answers every GET route with the GET's status and headers and no body")
    func head() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let token = try await client.signUp()
            for (path, bearer) in [
                ("/health", nil), ("/metrics", nil), ("/v1/user/profile", token),
                ("/api/notifications/", token),
            ] as [(String, String?)] {
                let get = try await client.send(.get, path, token: bearer)
                let head = try await client.send(.head, path, token: bearer)
                #expect(head.status == get.status, "\(path)")
                #expect(head.body.readableBytes == 0, "\(path)")
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(path)")
            }
        }
    }

    @Test("a known path with a wrong method is 405 naming the methods it answers; an unknown path stays 404")
    func methodNotAllowed() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            for (method, path, allow) in [
                (HTTPRequest.Method.delete, "/v1/user/profile", "GET, HEAD, PUT"),
                (.post, "/health", "GET, HEAD"),
                (.get, "/v1/auth/login", "POST"),
                (.get, "/api/notifications/abc/read", "PUT"),
                (.patch, "/api/notifications/abc", "DELETE"),
            ] {
                let response = try await client.send(method, path)
                #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                #expect(response.headers[.allow] == allow, "\(method) \(path)")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            #expect(try await client.send(.get, "/no/such/path").status == .notFound)
            #expect(try await client.send(.get, "/api/notifications/a/b/c").status == .notFound)
        }
    }
}
