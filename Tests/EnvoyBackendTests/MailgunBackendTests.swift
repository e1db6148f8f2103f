import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import EnvoySim
import EnvoyTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite("The backend sending through Mailgun (the mock), with its worker")
struct MailgunBackendTests {
    @Test("MAILGUN_* configured: the welcome email reaches Mailgun from the in-process worker; the summary says so")
    func welcome() async throws {
        let mock = try await MockMailgun.start()
        defer { Task { await mock.stop() } }
        let stack = try TestStack {
            $0.mailgun = .init(apiKey: mock.apiKey, domain: "mg.example.com", baseURL: mock.baseURL)
        }
        let backend = try await stack.backend()
        #expect(backend.summary["mailer"] == "mailgun mg.example.com via \(mock.baseURL)")
        #expect(!"\(backend.summary)".contains(mock.apiKey))
        let app = backend.application()
        try await app.test(.live) { client in
            _ = try await client.signUp(email: "ann@example.com")
            #expect(await eventually { mock.messages.count == 1 })
            let form = try #require(mock.messages.first).form
            #expect(form.values("to") == ["ann@example.com"])
            #expect(form.value("subject") == "Welcome to Envoyou, Ann")
            #expect(form.value("html")?.contains("<strong>ann@example.com</strong>") == true)
        }
        #expect(stack.outbox().isEmpty)
    }

    @Test("bulk to 2,500: three batches of ≤1000, nobody sees anyone else, a failed batch retries alone")
    func bulk() async throws {
        let mock = try await MockMailgun.start()
        defer { Task { await mock.stop() } }
        let stack = try TestStack {
            $0.mailgun = .init(apiKey: mock.apiKey, domain: "mg.example.com", baseURL: mock.baseURL)
        }
        let backend = try await stack.backend()
        mock.faults.fail(next: 1, status: 500, message: "internal error")
        let recipients = (0..<2500).map {
            SendBulkEmail.Recipient(address: "user\($0)@example.com", variables: ["name": "User \($0)"])
        }
        try await backend.emails.sendBulk(
            .init(
                recipients: recipients,
                content: EmailContent(subject: "News for %recipient.name%", body: "Hi %recipient.name%")))
        try await backend.application().test(.live) { _ in
            #expect(await eventually(timeout: .seconds(20)) { mock.messages.count == 3 })
        }
        let batches = mock.messages
        #expect(batches.map(\.to.count).sorted() == [500, 1000, 1000])
        #expect(Set(batches.flatMap(\.to)).count == 2500)
        for batch in batches {
            let variables = try #require(batch.form.value("recipient-variables"))
            let object = try JSONSerialization.jsonObject(with: Data(variables.utf8)) as? [String: [String: String]]
            #expect(Set(object?.keys.map { $0 } ?? []) == Set(batch.to), "every recipient gets a copy of their own")
        }
        #expect(mock.refusals.isEmpty)
    }
}
