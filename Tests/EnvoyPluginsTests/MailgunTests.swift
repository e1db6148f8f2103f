import EnvoyFramework
@testable import EnvoyPlugins
import EnvoySim
import Foundation
import Testing

@Suite("libcurl HTTP client and the Mailgun mailer, against the mock Mailgun")
struct MailgunTests {
    static func message() -> EmailMessage {
        var message = EmailMessage(
            to: ["a@example.com", "b@example.com"], from: "noreply@example.com", fromName: "Envoyou, Inc.",
            subject: "Hello", text: "plain", html: "<p>html</p>")
        message.cc = ["c@example.com"]
        message.bcc = ["d@example.com"]
        message.tags = ["welcome", "onboarding"]
        message.variables = ["user_id": "42"]
        message.headers = ["X-Campaign": "spring"]
        message.testMode = true
        return message
    }

    @Test("every field reaches Mailgun as its multipart form, with Basic auth; Mailgun's id comes back")
    func fields() async throws {
        let mock = try await MockMailgun.start()
        defer { Task { await mock.stop() } }
        let mailer = MailgunMailer(
            configuration: .init(apiKey: mock.apiKey, domain: "mg.example.com", baseURL: mock.baseURL))
        let receipt = try await mailer.send(Self.message())
        let received = try #require(mock.messages.first)
        #expect(receipt.messageID == received.id && received.domain == "mg.example.com")
        let form = received.form
        #expect(form.value("from") == "\"Envoyou, Inc.\" <noreply@example.com>")
        #expect(form.values("to") == ["a@example.com", "b@example.com"])
        #expect(form.values("cc") == ["c@example.com"] && form.values("bcc") == ["d@example.com"])
        #expect(
            form.value("subject") == "Hello" && form.value("text") == "plain" && form.value("html") == "<p>html</p>")
        #expect(form.values("o:tag") == ["welcome", "onboarding"] && form.value("o:testmode") == "yes")
        #expect(form.value("v:user_id") == "42" && form.value("h:X-Campaign") == "spring")

        var stored = Self.message()
        stored.text = nil
        stored.html = nil
        stored.storedTemplate = StoredTemplate(name: "welcome-v2", variables: ["name": "Ann"])
        stored.recipientVariables = ["a@example.com": ["first": "A"], "b@example.com": ["first": "B"]]
        _ = try await mailer.send(stored)
        let second = try #require(mock.messages.last).form
        #expect(second.value("template") == "welcome-v2" && second.value("t:variables") == #"{"name":"Ann"}"#)
        #expect(
            second.value("recipient-variables") == #"{"a@example.com":{"first":"A"},"b@example.com":{"first":"B"}}"#)
    }

    @Test("a wrong key is a rejection naming Mailgun's reason and never the key")
    func wrongKey() async throws {
        let mock = try await MockMailgun.start()
        defer { Task { await mock.stop() } }
        let secret = "key-wrong-secret-value"
        let mailer = MailgunMailer(
            configuration: .init(apiKey: secret, domain: "mg.example.com", baseURL: mock.baseURL))
        do {
            _ = try await mailer.send(Self.message())
            Issue.record("sent with a wrong key")
        } catch let failure as MailError {
            #expect(failure.isRejected)
            #expect(failure.reason == "mailgun 401: Forbidden")
            #expect(!"\(failure)".contains(secret))
        }
        #expect(mock.messages.isEmpty && mock.refusals.map(\.status) == [401])
    }

    @Test("Mailgun's own limits, over 1,000 recipients or 3 tags, are rejections before anything is sent")
    func recipientLimit() async throws {
        let mock = try await MockMailgun.start()
        defer { Task { await mock.stop() } }
        let mailer = MailgunMailer(
            configuration: .init(apiKey: mock.apiKey, domain: "d.example.com", baseURL: mock.baseURL))
        let message = EmailMessage(
            to: (0..<1001).map { "u\($0)@example.com" }, from: "noreply@example.com", subject: "s", text: "t")
        #expect(mailer.maxRecipientsPerMessage == 1000)
        await #expect(throws: MailError.rejected("mailgun takes at most 1,000 recipients a message, got 1001")) {
            _ = try await mailer.send(message)
        }
        var tagged = Self.message()
        tagged.tags = ["a", "b", "c", "d"]
        await #expect(throws: MailError.self) { _ = try await mailer.send(tagged) }
        #expect(mock.messages.isEmpty && mock.refusals.isEmpty)
    }

    @Test("429 waits for X-RateLimit-Reset; 5xx and timeouts are retryable, not permanent")
    func classification() async throws {
        let mock = try await MockMailgun.start()
        defer { Task { await mock.stop() } }
        let mailer = MailgunMailer(
            configuration: .init(apiKey: mock.apiKey, domain: "d.example.com", baseURL: mock.baseURL))
        let impatient = MailgunMailer(
            configuration: .init(
                apiKey: mock.apiKey, domain: "d.example.com", baseURL: mock.baseURL, timeout: .milliseconds(500)))
        let reset = Int((Date().timeIntervalSince1970 + 30) * 1000)
        mock.faults.fail(next: 1, status: 429, headers: ["X-RateLimit-Reset": "\(reset)"], message: "slow down")
        do {
            _ = try await mailer.send(Self.message())
            Issue.record("429 accepted")
        } catch let error as MailError {
            let delay = try #require(error.retryAfter)
            #expect(delay > .seconds(28) && delay <= .seconds(30))
            #expect(error.reason.contains("slow down"))
        }
        mock.faults.fail(next: 1, status: 503)
        do {
            _ = try await mailer.send(Self.message())
            Issue.record("503 accepted")
        } catch let error as MailError {
            #expect(!error.isRejected && error.retryAfter == nil)
        }
        mock.faults.setLatency(.seconds(3))
        do {
            _ = try await impatient.send(Self.message())
            Issue.record("a slow Mailgun did not time out")
        } catch let error as MailError {
            #expect(!error.isRejected && error.reason.contains("timed out"), "\(error)")
        }
        mock.faults.reset()
        let receipt = try await mailer.send(Self.message())
        // The refused sends were never accepted. The timed-out one may still be, once the mock's delay ends (a
        // provider can take a message whose answer never came back — why sends carry Message-IDs): on a loaded
        // machine that can happen before this line.
        #expect(mock.messages.contains { $0.id == receipt.messageID })
        #expect(mock.messages.count <= 2)
    }

    @Test("the reset header is read as Unix ms, Unix s or seconds; Retry-After is the fallback")
    func retryDelays() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(MailgunMailer.retryDelay(reset: "1800000012000", retryAfter: nil, now: now) == .seconds(12))
        #expect(MailgunMailer.retryDelay(reset: "1800000007", retryAfter: nil, now: now) == .seconds(7))
        #expect(MailgunMailer.retryDelay(reset: "5", retryAfter: nil, now: now) == .seconds(5))
        #expect(MailgunMailer.retryDelay(reset: nil, retryAfter: "9", now: now) == .seconds(9))
        #expect(MailgunMailer.retryDelay(reset: "1799999990", retryAfter: nil, now: now) == .seconds(1))
        #expect(MailgunMailer.retryDelay(reset: nil, retryAfter: nil, now: now) == .seconds(1))
    }

    @Test("the client reuses connections, runs 200 requests at once, and cancels and refuses cleanly")
    func client() async throws {
        let mock = try await MockMailgun.start()
        defer { Task { await mock.stop() } }
        let client = CurlHTTPClient()
        let mailer = MailgunMailer(
            configuration: .init(apiKey: mock.apiKey, domain: "d.example.com", baseURL: mock.baseURL), client: client)
        let request = OutboundRequest(method: "GET", url: mock.baseURL + "/nothing-here")
        let first = try await client.execute(request)
        let second = try await client.execute(request)
        #expect(first.status == 404 && first.newConnections == 1 && second.newConnections == 0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { _ = try await mailer.send(Self.message()) } }
            try await group.waitForAll()
        }
        #expect(mock.messages.count == 200 && Set(mock.messages.map(\.id)).count == 200)

        mock.faults.setLatency(.seconds(5))
        let started = ContinuousClock.now
        let slow = Task { try await mailer.send(Self.message()) }
        try await Task.sleep(for: .milliseconds(100))
        slow.cancel()
        await #expect(throws: CancellationError.self) { _ = try await slow.value }
        #expect(ContinuousClock.now - started < .seconds(2))

        let closedPort = OutboundRequest(method: "GET", url: "http://127.0.0.1:1/", timeout: .seconds(2))
        await #expect(throws: OutboundHTTPError.self) { _ = try await client.execute(closedPort) }
        await #expect(throws: OutboundHTTPError.self) {
            _ = try await client.execute(OutboundRequest(method: "GET", url: "file:///etc/passwd"))
        }
        // Shut down with a request in flight: it fails with `shutDown`; requests and cancellations that come after
        // the transfer thread has gone find the engine intact (its libcurl handle is freed only with the engine).
        let inFlight = Task { try await mailer.send(Self.message()) }  // the mock still answers after 5 s
        try await Task.sleep(for: .milliseconds(100))
        let shutdownAt = ContinuousClock.now
        client.shutdown()
        await #expect(throws: (any Error).self) { _ = try await inFlight.value }
        #expect(ContinuousClock.now - shutdownAt < .seconds(2))
        try await Task.sleep(for: .milliseconds(100))
        await #expect(throws: OutboundHTTPError.self) { _ = try await client.execute(request) }
        let late = Task { try await client.execute(request) }
        late.cancel()
        await #expect(throws: (any Error).self) { _ = try await late.value }
    }
}
