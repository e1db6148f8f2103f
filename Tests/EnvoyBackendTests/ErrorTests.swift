import EnvoyBackend
import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite("Errors are problem+json, and no input crashes the server")
struct ErrorTests {
    @Test("malformed JSON 400, validation 422 naming the field, oversized 413, unknown route 404")
    func clientErrors() async throws {
        let stack = try TestStack { $0.rateLimitPolicies = [] }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let malformed = try await client.send(.post, "/v1/auth/register", json: "{not json")
            #expect(malformed.status == .badRequest)
            #expect(malformed.headers[.contentType] == "application/problem+json")
            let problem = try malformed.json()
            #expect(problem["status"] as? Int == 400)
            #expect(problem["title"] != nil && problem["type"] != nil && problem["detail"] != nil)

            let cases: [(String, String)] = [
                (#"{"email":"ann@example.com","password":"correct horse"}"#, "name"),
                (#"{"email":"not-an-email","password":"correct horse","name":"Ann"}"#, "email"),
                (#"{"email":"ann@example.com","password":"short","name":"Ann"}"#, "password"),
                (#"{"email":"ann@example.com","password":"correct horse","name":"   "}"#, "name"),
                (#"{"email":"ann@example.com","password":12345678,"name":"Ann"}"#, "password"),
                (#"{"email":null,"password":"correct horse","name":"Ann"}"#, "email"),
            ]
            for (body, field) in cases {
                let response = try await client.send(.post, "/v1/auth/register", json: body)
                #expect(response.status == .unprocessableContent, "\(body)")
                #expect(try response.json()["field"] as? String == field, "\(body)")
            }

            let array = try await client.send(.post, "/v1/auth/login", json: "[1, 2]")
            #expect(array.status == .badRequest)
            let empty = try await client.send(.post, "/v1/auth/login", json: "")
            #expect(empty.status == .badRequest)

            let big = String(repeating: "a", count: (1 << 20) + 10)
            let oversized = try await client.send(.post, "/v1/auth/login", json: #"{"email":"\#(big)"}"#)
            #expect(oversized.status == .contentTooLarge)
            #expect(oversized.headers[.contentType] == "application/problem+json")

            let missing = try await client.send(.get, "/no/such/route")
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType] == "application/problem+json")

            let token = try await client.signUp()
            let badZone = try await client.send(
                .put, "/v1/user/profile", json: #"{"timezone":"Mars/Olympus"}"#, token: token)
            #expect(badZone.status == .unprocessableContent)
            #expect(try badZone.json()["field"] as? String == "timezone")
            let badLimit = try await client.send(.get, "/api/notifications/?limit=0", token: token)
            #expect(badLimit.status == .unprocessableContent)
            #expect(try badLimit.json()["field"] as? String == "limit")
        }
    }

    @Test("missing, malformed, forged and expired tokens answer 401")
    func tokens() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        let forger = await AccessTokens(secret: "another-secret-that-is-also-32-bytes-long", lifetime: .seconds(3600))
        let expired = await AccessTokens(secret: stack.configuration.jwtSecret!, lifetime: .seconds(-60))
        try await app.test(.ahc(.http)) { client in
            let token = try await client.signUp()
            let userID = try #require(
                try await client.send(.get, "/v1/user/profile", token: token).json()["id"] as? String)
            let forged = try await forger.issue(userID: userID)
            let stale = try await expired.issue(userID: userID)
            let parts = token.split(separator: ".")
            let tampered = "\(parts[0]).\(parts[1])x.\(parts[2])"
            let noneAlg = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\(parts[1])."
            for (label, bearer) in [
                ("missing", nil), ("garbage", "abc"), ("forged", forged), ("tampered", tampered), ("alg none", noneAlg),
            ] {
                let response = try await client.send(.get, "/v1/user/profile", token: bearer)
                #expect(response.status == .unauthorized, "\(label)")
                #expect(response.headers[.contentType] == "application/problem+json", "\(label)")
            }
            let staleResponse = try await client.send(.get, "/v1/user/profile", token: stale)
            #expect(staleResponse.status == .unauthorized)
            #expect((try staleResponse.json()["detail"] as? String)?.contains("expired") == true)
            var basic = HTTPFields()
            basic[.authorization] = "Basic YTpi"
            let wrongScheme = try await client.execute(uri: "/v1/user/profile", method: .get, headers: basic)
            #expect(wrongScheme.status == .unauthorized)
        }
    }

    @Test("random bytes, wrong types and odd paths never produce a 5xx")
    func garbageNeverCrashes() async throws {
        let stack = try TestStack {
            $0.rateLimitPolicies = []
            $0.paddleWebhookSecrets = ["whsec-garbage-test"]
        }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let token = try await client.signUp()
            let targets: [(HTTPRequest.Method, String)] = [
                (.post, "/v1/auth/register"), (.post, "/v1/auth/login"), (.put, "/v1/user/profile"),
                (.post, "/api/notifications/"), (.put, "/api/notifications/x/read"), (.post, "/v1/payments/webhook"),
            ]
            var generator = SystemRandomNumberGenerator()
            let noise = (0..<20).map { _ in
                String(decoding: (0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) }, as: UTF8.self)
            }
            let bodies =
                [
                    "null", "true", "\"string\"", "{}", #"{"email":{}}"#, #"{"title":[]}"#, "\u{0}\u{1}\u{2}",
                    String(repeating: "[", count: 5000), #"{"name":"\u0000"}"#,
                    "{\"a\":" + String(repeating: "1", count: 400) + "}",
                ] + noise
            for (method, path) in targets {
                for body in bodies {
                    let response = try await client.send(method, path, json: body, token: token)
                    #expect(
                        response.status.code < 500 || response.status == .serviceUnavailable,
                        "\(method) \(path) \(String(reflecting: body.prefix(40)))")
                }
            }
            for path in [
                "/api/notifications/%00/read", "/v1/user/profile?x=%zz", "/api/notifications/?limit=abc&offset=-1",
                "/../../etc/passwd",
            ] {
                let response = try await client.send(.get, path, token: token)
                #expect(response.status.code < 500, "\(path)")
            }
            let health = try await client.send(.get, "/health")
            #expect(health.status == .ok)
        }
    }
}
