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
