import EnvoyFramework
import Foundation
import Logging
import Testing

/// A mailer that keeps what it is given, taking at most 1,000 recipients a message.
final class RecordingMailer: Mailer, @unchecked Sendable {  // every stored property is behind `lock`
    var maxRecipientsPerMessage: Int { 1000 }
    private let lock = NSLock()
    private var _sent: [EmailMessage] = []
    var sent: [EmailMessage] { lock.withLock { _sent } }
    func send(_ message: EmailMessage) async throws -> MailReceipt {
        lock.withLock { _sent.append(message) }
        return MailReceipt(messageID: "<\(UUID().uuidString)@test>")
    }
}

@Suite("Mail: templates, composing, the file mailer, and queueing email")
struct MailTests {
    let templates = try! EmailTemplates(sources: [
        "hello.text": "Hi {{{name}}} & welcome{{#plan}}, plan {{{plan}}}{{/plan}}",
        "hello.html": "<p>Hi {{name}}</p>",
        "hello.subject": "Hello {{{name}}}\n",
        "news.text": "Dear %recipient.first%, {{{topic}}} is out.",
        "news.html": "<p>Dear %recipient.first%</p>",
        "news.subject": "News for %recipient.first%",
    ])
    var composer: EmailComposer {
        EmailComposer(templates: templates, sender: .init(address: "noreply@example.com", name: "Ex"))
    }

    @Test("a template renders text, HTML (escaped) and subject; unknown templates and missing variables are refused")
    func rendering() throws {
        let message = try composer.message(
            .init(to: ["a@example.com"], template: "hello", templateData: ["name": "<Ann>"]))
        #expect(message.subject == "Hello <Ann>")
        #expect(message.text == "Hi <Ann> & welcome")
        #expect(message.html == "<p>Hi &lt;Ann&gt;</p>")
        #expect(
            try composer.message(
                .init(to: ["a@example.com"], template: "hello", templateData: ["name": "A", "plan": "pro"])
            )
            .text == "Hi A & welcome, plan pro")
        #expect(throws: InvalidEmail("no email template named missing (expected missing.text.mustache)")) {
            try composer.message(.init(to: ["a@example.com"], template: "missing"))
        }
        #expect(throws: InvalidEmail("template hello needs name, which the data lacks")) {
            try composer.message(.init(to: ["a@example.com"], template: "hello", templateData: ["plan": "x"]))
        }
        #expect(throws: InvalidEmail.self) {
            try composer.message(.init(to: ["not an address"], subject: "s", body: "b"))
        }
        #expect(throws: InvalidEmail.self) {
            try composer.message(.init(to: ["a@example.com"], subject: "x\r\nBcc: evil@example.com", body: "b"))
        }
        var headers = EmailContent(subject: "s", body: "b", headers: ["X-Evil": "a\r\nBcc: evil@example.com"])
        #expect(throws: InvalidEmail.self) { try composer.message(.init(to: ["a@example.com"], content: headers)) }
        // How many tags a message may carry is the provider's limit (the Mailgun plugin checks its 3), not the
        // framework's.
        headers.headers = nil
        headers.tags = ["1", "2", "3", "4"]
        #expect(throws: Never.self) { try composer.message(.init(to: ["a@example.com"], content: headers)) }
    }

    @Test("addresses: one @, a local part of at most 64 bytes, a dotted domain, no spaces, controls or brackets")
    func addresses() {
        for address in ["a@example.com", "first.last+tag@sub.example.co", "ü@例え.jp", "x@a-b.example"] {
            #expect(EmailAddress.isValid(address), "\(address)")
        }
        let long = String(repeating: "a", count: 250) + "@b.co"
        for address in [
            "", "a", "@example.com", "a@", "a@b", "a@@b.com", "a@b@c.com", "a b@c.com", "a@c.com\n", "a\t@c.com",
            "a\u{A0}b@c.com", "a\u{7}@c.com", "a@-c.com", "a@c-.com", "a@c..com", "a@[1.2.3.4]", "a@c,d.com",
            "a@c\".com", String(repeating: "a", count: 65) + "@b.com", String(repeating: "ü", count: 33) + "@b.com",
            long,
        ] {
            #expect(!EmailAddress.isValid(address), "\(address.debugDescription)")
        }
    }

    @Test("the templates built into the binary are templates/email/ as committed (scripts/generate-email-templates)")
    func builtInTemplates() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("templates/email")
        var files: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".mustache") {
            files[String(name.dropLast(".mustache".count))] = try String(
                contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
        }
        #expect(files == EmailTemplates.builtInSources, "run scripts/generate-email-templates")
        let welcome = try EmailTemplates.builtIn().render("welcome", data: ["name": "Ann", "email": "ann@example.com"])
        #expect(welcome.subject == "Welcome to Envoyou, Ann")
    }

    @Test("the repository's templates all render, and each names what it needs")
    func repositoryTemplates() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let loaded = try await EmailTemplates.load(directory: root.appendingPathComponent("templates/email").path)
        let rendered = try loaded.render("welcome", data: ["name": "Ann", "email": "ann@example.com"])
        #expect(rendered.subject == "Welcome to Envoyou, Ann")
        #expect(rendered.text.contains("ann@example.com"))
        #expect(rendered.html?.contains("<strong>ann@example.com</strong>") == true)
        let needs: [String: [String: String]] = [
            "password_reset": ["name": "A", "reset_url": "https://x/r?a=1&b=2", "expires_minutes": "30"],
            "payment_receipt": [
                "name": "A", "amount": "10.00", "currency": "USD", "plan": "basic", "transaction_id": "txn_1",
                "paid_at": "2026-12-01",
            ],
            "payment_failed": ["name": "A", "amount": "10.00", "currency": "USD", "plan": "basic"],
            "subscription_changed": ["name": "A", "new_plan": "premium", "status": "active"],
        ]
        for (name, data) in needs {
            let email = try loaded.render(name, data: data)
            #expect(email.subject?.isEmpty == false && email.html != nil, "\(name)")
            for key in data.keys {
                var partial = data
                partial[key] = nil
                #expect(throws: InvalidEmail.self, "\(name) without \(key)") { try loaded.render(name, data: partial) }
            }
        }
        let reset = try loaded.render("password_reset", data: needs["password_reset"]!)
        #expect(reset.html?.contains("https://x/r?a=1&amp;b=2") == true)
        #expect(reset.text.contains("https://x/r?a=1&b=2"))
    }

    @Test("bulk: every recipient needs their placeholders; HTML gets escaped copies of the values")
    func bulkComposing() throws {
        let recipients = [
            SendBulkEmail.Recipient(address: "a@example.com", variables: ["first": "<Ann>"]),
            SendBulkEmail.Recipient(address: "b@example.com", variables: ["first": "Bob"]),
        ]
        let content = EmailContent(template: "news", templateData: ["topic": "v2"])
        let message = try composer.message(SendBulkEmail.Payload(recipients: recipients, content: content))
        #expect(message.to == ["a@example.com", "b@example.com"])
        #expect(message.html == "<p>Dear %recipient.first__html%</p>")
        #expect(message.recipientVariables?["a@example.com"] == ["first": "<Ann>", "first__html": "&lt;Ann&gt;"])
        var missing = recipients
        missing[1].variables = [:]
        #expect(throws: InvalidEmail("recipient b@example.com has no value for %recipient.first%")) {
            try composer.message(SendBulkEmail.Payload(recipients: missing, content: content))
        }
    }

    @Test("the file mailer writes one complete .eml per message, and one per recipient for a batch")
    func fileMailer() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)")
        let mailer = FileMailer(directory: directory)
        var message = EmailMessage(
            to: ["a@example.com", "b@example.com"], from: "noreply@example.com", fromName: "Envoyou Café",
            subject: "Grüße", text: "Line 1\nLine 2", html: "<b>hi</b>")
        message.cc = ["c@example.com"]
        let receipt = try await mailer.send(message)
        var files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files.count == 1 && files[0].hasSuffix(".eml"))
        let contents = try String(contentsOf: directory.appendingPathComponent(files[0]), encoding: .utf8)
        #expect(contents.contains("Message-ID: \(receipt.messageID)"))
        #expect(contents.contains("To: a@example.com, b@example.com"))
        #expect(contents.contains("Cc: c@example.com"))
        #expect(contents.contains("Subject: =?utf-8?B?"))
        #expect(contents.contains("Line 1\r\nLine 2"))
        #expect(contents.contains("Content-Type: multipart/alternative"))

        let batch = try composer.message(
            SendBulkEmail.Payload(
                recipients: [
                    .init(address: "a@example.com", variables: ["first": "<Ann>"]),
                    .init(address: "b@example.com", variables: ["first": "Bob"]),
                ], content: EmailContent(template: "news", templateData: ["topic": "v2"])))
        try FileManager.default.removeItem(at: directory)
        _ = try await mailer.send(batch)
        files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(files.count == 2)
        let first = try String(contentsOf: directory.appendingPathComponent(files[0]), encoding: .utf8)
        #expect(first.contains("To: a@example.com\r\n") && !first.contains("b@example.com"))
        #expect(first.contains("Dear <Ann>, v2 is out.") && first.contains("<p>Dear &lt;Ann&gt;</p>"))
        #expect(first.contains("Subject: News for <Ann>"))
    }

    @Test("a message sent again under the same Message-ID (a task re-run after a crash) leaves one file per copy")
    func resentMessage() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)")
        let mailer = FileMailer(directory: directory)
        var message = EmailMessage(
            to: ["a@example.com"], from: "noreply@example.com", fromName: "Envoy", subject: "Hi", text: "once")
        message.messageID = "<task-123@example.com>"
        for _ in 0..<3 { #expect(try await mailer.send(message).messageID == "<task-123@example.com>") }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files == ["task-123-0.eml"])
        let contents = try String(contentsOf: directory.appendingPathComponent(files[0]), encoding: .utf8)
        #expect(contents.contains("Message-ID: <task-123@example.com>\r\n"))

        var batch = message
        batch.to = ["a@example.com", "b@example.com"]
        batch.recipientVariables = ["a@example.com": [:], "b@example.com": [:]]
        batch.messageID = "<task-456@example.com>"
        for _ in 0..<2 { _ = try await mailer.send(batch) }
        let all = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(all == ["task-123-0.eml", "task-456-0.eml", "task-456-1.eml"])
        let copy = try String(contentsOf: directory.appendingPathComponent("task-456-1.eml"), encoding: .utf8)
        #expect(copy.contains("Message-ID: <task-456.1@example.com>\r\n"))
    }

    @Test("EmailQueue refuses bad email when it is queued, and queues nothing")
    func enqueueTimeChecks() async throws {
        let fixture = try QueueFixture()
        let queue = try await fixture.open()
        let emails = EmailQueue(queue: queue, composer: composer)
        await #expect(throws: InvalidEmail.self) {
            try await emails.send(.init(to: ["a@example.com"], template: "hello"))
        }
        await #expect(throws: InvalidEmail.self) {
            try await emails.sendBulk(
                .init(
                    recipients: [
                        .init(address: "a@example.com", variables: ["first": "A"]), .init(address: "b@example.com"),
                    ],
                    content: EmailContent(template: "news", templateData: ["topic": "x"])))
        }
        await #expect(throws: InvalidEmail("A@example.com is listed twice")) {
            try await emails.sendBulk(
                .init(
                    recipients: [.init(address: "a@example.com"), .init(address: "A@example.com")],
                    content: EmailContent(subject: "s", body: "b")))
        }
        #expect(try await queue.stats().allSatisfy { $0.ready == 0 })
        let result = try await emails.send(.init(to: ["a@example.com"], template: "hello", templateData: ["name": "A"]))
        guard case .enqueued = result else { Issue.record("not queued"); return }
    }

    /// A mailer that fails every send with `error`.
    struct FailingMailer: Mailer {
        let error: MailError
        func send(_ message: EmailMessage) async throws -> MailReceipt { throw error }
    }

    @Test(
        "the send task maps a mail error: rejected to a dead letter, rate limited to its wait, unavailable to backoff")
    func mailErrorsMapped() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let context = TaskContext(taskID: "t", attempt: 1, logger: logger)
        let payload = SendEmail.Payload(to: ["a@example.com"], subject: "s", body: "b")
        func failure(_ error: MailError) async -> (any Error)? {
            do {
                try await SendEmail(mailer: FailingMailer(error: error), composer: composer).handle(
                    payload, context: context)
                return nil
            } catch { return error }
        }
        let rejected = try #require(await failure(.rejected("mailgun 400: bad")) as? TaskFailure)
        #expect(rejected.isPermanent && rejected.reason.contains("mailgun 400: bad"))
        let limited = try #require(await failure(.rateLimited(retryAfter: .seconds(7), "429")) as? TaskFailure)
        #expect(limited.retryAfter == .seconds(7) && !limited.isPermanent)
        let unavailable = await failure(.unavailable("503"))
        #expect(unavailable as? MailError == .unavailable("503"), "retried with the task's backoff")
        #expect(!(unavailable is TaskFailure))
    }

    @Test("a bulk task above 1000 recipients splits into batch tasks once, even when it runs twice")
    func bulkSplitting() async throws {
        let fixture = try QueueFixture()
        let queue = try await fixture.open()
        let mailer = RecordingMailer()
        let handler = SendBulkEmail(mailer: mailer, composer: composer, queue: queue)
        let recipients = (0..<2500).map {
            SendBulkEmail.Recipient(address: "user\($0)@example.com", variables: ["first": "U\($0)"])
        }
        let payload = SendBulkEmail.Payload(
            recipients: recipients, content: EmailContent(template: "news", templateData: ["topic": "t"]))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let context = TaskContext(taskID: "parent", attempt: 1, logger: logger)
        try await handler.handle(payload, context: context)
        try await handler.handle(payload, context: context)  // a worker died after splitting: it runs again
        #expect(mailer.sent.isEmpty)
        var batches: [SendBulkEmail.Payload] = []
        while let task = try await queue.claim(queues: ["email"], lease: .seconds(30)) {
            batches.append(try JSONDecoder().decode(SendBulkEmail.Payload.self, from: Data(task.payload)))
        }
        #expect(batches.map(\.recipients.count) == [1000, 1000, 500])
        #expect(Set(batches.flatMap(\.recipients).map(\.address)).count == 2500)
        for batch in batches { try await handler.handle(batch, context: context) }
        #expect(mailer.sent.map(\.to.count) == [1000, 1000, 500])
        #expect(mailer.sent.allSatisfy { $0.recipientVariables?.count == $0.to.count })
    }

    @Test("payloads keep their JSON shape: content fields sit beside the recipients")
    func payloadShape() throws {
        let payload = SendEmail.Payload(to: ["a@example.com"], template: "hello", templateData: ["name": "A"])
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(payload)) as? [String: Any]
        #expect(object?["template"] as? String == "hello")
        let old = #"{"to":["a@example.com"],"template":"welcome","templateData":{"name":"A"}}"#
        #expect(try JSONDecoder().decode(SendEmail.Payload.self, from: Data(old.utf8)).content.template == "welcome")
    }
}
