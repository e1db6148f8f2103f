import EnvoyBackend
import Foundation
import Hummingbird
import HummingbirdTesting
import EnvoyTestSupport
import Testing

@Suite("A new user's journey through the HTTP API")
struct UserJourneyTests {
    @Test("register → login → profile MISS then HIT → update → profile shows it → welcome email delivered")
    func journey() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            let registered = try await client.send(
                .post, "/v1/auth/register",
                json: #"{"email":"Ann@Example.com","password":"correct horse battery","name":"Ann"}"#)
            #expect(registered.status == .created)
            let user = try registered.json()
            #expect(user["email"] as? String == "ann@example.com")
            #expect(user["name"] as? String == "Ann")
            #expect((user["id"] as? String)?.isEmpty == false)

            let login = try await client.send(
                .post, "/v1/auth/login", json: #"{"email":"ann@example.com","password":"correct horse battery"}"#)
            #expect(login.status == .ok)
            let tokenBody = try login.json()
            #expect(tokenBody["token_type"] as? String == "bearer")
            #expect(tokenBody["expires_in"] as? Int == 3600)
            let token = try #require(tokenBody["access_token"] as? String)

            let first = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(first.status == .ok)
            #expect(first.headers[.init("X-Cache")!] == "MISS")
            let profile = try first.json()
            for key in [
                "id", "email", "name", "company", "job_title", "timezone", "plan", "email_verified", "created_at",
                "updated_at",
            ] {
                #expect(profile.keys.contains(key), "profile lacks \(key)")
            }
            #expect(profile["plan"] as? String == "free")

            let second = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(second.headers[.init("X-Cache")!] == "HIT")
            #expect(second.text == first.text)

            let updated = try await client.send(
                .put, "/v1/user/profile", json: #"{"company":"Acme","job_title":"CTO","timezone":"Europe/Berlin"}"#,
                token: token)
            #expect(updated.status == .ok)
            #expect(try updated.json()["company"] as? String == "Acme")

            let afterUpdate = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(afterUpdate.headers[.init("X-Cache")!] == "MISS")
            let changed = try afterUpdate.json()
            #expect(changed["company"] as? String == "Acme")
            #expect(changed["job_title"] as? String == "CTO")
            #expect(changed["timezone"] as? String == "Europe/Berlin")
            #expect(changed["name"] as? String == "Ann")

            let delivered = await eventually { stack.outbox().count == 1 }
            #expect(delivered)
            let mail = try #require(stack.outbox().first)
            #expect(mail.contains("To: ann@example.com"))
            #expect(mail.contains("Subject: Welcome to Envoyou, Ann"))
            #expect(mail.contains("Hi Ann,"))
            #expect(mail.contains("From: Envoyou <noreply@envoyou.com>"))
        }
    }

    @Test("registering an email twice answers 409; a wrong password 401; an unknown email 401")
    func conflictsAndBadCredentials() async throws {
        let stack = try TestStack()
        let app = try await stack.backend().application()
        try await app.test(.ahc(.http)) { client in
            _ = try await client.signUp(email: "bob@example.com")
            let again = try await client.send(
                .post, "/v1/auth/register",
                json: #"{"email":"BOB@example.com","password":"another password","name":"Bob"}"#)
            #expect(again.status == .conflict)
            #expect(again.headers[.contentType] == "application/problem+json")
            let wrong = try await client.send(
                .post, "/v1/auth/login", json: #"{"email":"bob@example.com","password":"wrong password"}"#)
            #expect(wrong.status == .unauthorized)
            let unknown = try await client.send(
                .post, "/v1/auth/login", json: #"{"email":"nobody@example.com","password":"whatever1"}"#)
            #expect(unknown.status == .unauthorized)
            #expect(try wrong.json()["detail"] as? String == unknown.json()["detail"] as? String)
        }
    }
}
