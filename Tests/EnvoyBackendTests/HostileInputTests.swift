import EnvoyBackend
import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@Suite("Hostile input: passwords bcrypt would truncate, look-alike emails, tokens outliving their account")
struct HostileInputTests {
    static func register(_ client: some TestClientProtocol, email: String, password: String) async throws
        -> TestResponse
    {
        let body = try JSONSerialization.data(withJSONObject: ["email": email, "password": password, "name": "Ann"])
        return try await client.send(.post, "/v1/auth/register", json: String(decoding: body, as: UTF8.self))
    }

    static func login(_ client: some TestClientProtocol, email: String, password: String) async throws
        -> HTTPResponse.Status
    {
        let body = try JSONSerialization.data(withJSONObject: ["email": email, "password": password])
        return try await client.send(.post, "/v1/auth/login", json: String(decoding: body, as: UTF8.self)).status
    }

    @Test("a password with a NUL byte or over 72 bytes is refused at sign-up, and a login compares all it is given")
    func passwords() async throws {
        let stack = try TestStack { $0.rateLimitPolicies = [] }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            for password in ["\u{0}secret12", "secret12\u{0}tail", String(repeating: "p", count: 73)] {
                let response = try await Self.register(client, email: "nul@example.com", password: password)
                #expect(response.status == .unprocessableContent, "\(password.utf8.count) bytes")
                #expect(try response.json()["field"] as? String == "password")
            }
            #expect(try await Self.login(client, email: "nul@example.com", password: "") == .unauthorized)

            let longest = String(repeating: "p", count: 72)
            #expect(try await Self.register(client, email: "long@example.com", password: longest).status == .created)
            #expect(try await Self.login(client, email: "long@example.com", password: longest) == .ok)
            #expect(try await Self.login(client, email: "long@example.com", password: longest + "x") == .unauthorized)
            #expect(
                try await Self.login(client, email: "long@example.com", password: longest + "\u{0}") == .unauthorized)
        }
    }

    @Test("look-alike emails are one account: NFC, case folding, IDN; zero-width and bidi characters are refused")
    func lookAlikes() async throws {
        let stack = try TestStack { $0.rateLimitPolicies = [] }
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let password = "correct horse battery"
            for (first, second) in [
                ("zo\u{EB}@example.com", "ZOE\u{308}@Example.com"),  // precomposed ë, then e + combining diaeresis
                ("stra\u{DF}e@example.com", "STRASSE@example.com"),
                ("user@b\u{FC}cher.de", "user@xn--bcher-kva.de"),
                ("ann@example.com", "  ANN@EXAMPLE.COM "),
            ] {
                let created = try await Self.register(client, email: first, password: password)
                #expect(created.status == .created, "\(first)")
                #expect(try await Self.register(client, email: second, password: password).status == .conflict)
                #expect(try await Self.login(client, email: second, password: password) == .ok, "\(second)")
            }
            let idn = try await Self.register(client, email: "me@m\u{FC}nchen.de", password: password)
            #expect(try idn.json()["email"] as? String == "me@xn--mnchen-3ya.de")
            for hostile in [
                "ann\u{200B}@example.com", "\u{202E}moc.elpmaxe@nna", "a\u{2066}b@example.com", "a\u{7F}@x.io",
            ] {
                let response = try await Self.register(client, email: hostile, password: password)
                #expect(response.status == .unprocessableContent, "\(hostile.unicodeScalars.map(\.value))")
            }
        }
    }

    @Test("a valid token of a user that no longer exists is 401 where the account is read or written, never a 5xx")
    func staleIdentity() async throws {
        let stack = try TestStack()
        let backend = try await stack.backend()
        let ghost = try await backend.tokens.issue(userID: "00000000-0000-4000-8000-000000000000")
        try await backend.application().test(.ahc(.http)) { client in
            for (method, path, body) in [
                (HTTPRequest.Method.post, "/api/notifications/", #"{"title":"t","message":"m"}"#),
                (.get, "/v1/user/profile", nil), (.put, "/v1/user/profile", #"{"name":"Gone"}"#),
            ] as [(HTTPRequest.Method, String, String?)] {
                let response = try await client.send(method, path, json: body, token: ghost)
                #expect(response.status == .unauthorized, "\(method) \(path): \(response.status)")
            }
            // The routes on the user's notifications find none, and fail nothing.
            for (method, path) in [
                (HTTPRequest.Method.get, "/api/notifications/"), (.put, "/api/notifications/read-all"),
                (.put, "/api/notifications/x/read"), (.delete, "/api/notifications/x"),
            ] {
                let response = try await client.send(method, path, token: ghost)
                #expect(response.status.code < 500, "\(method) \(path): \(response.status)")
            }
        }
    }
}
