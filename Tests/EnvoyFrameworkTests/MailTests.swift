import EnvoyFramework
import Foundation
import Mustache
import Testing

@Suite("Mail: templates, the file mailer, and the send_email task")
struct MailTests {
    let templates = EmailTemplates(
        library: MustacheLibrary(templates: [
            "hello.text": try! MustacheTemplate(string: "Hi {{{name}}} & welcome"),
            "hello.html": try! MustacheTemplate(string: "<p>Hi {{name}}</p>"),
            "hello.subject": try! MustacheTemplate(string: "Hello {{{name}}}\n"),
        ]))

    @Test("a template renders text, HTML (escaped) and subject; a missing template is a permanent failure")
    func rendering() throws {
        let handler = SendEmail(
            mailer: FileMailer(directory: URL(fileURLWithPath: "/nonexistent")), templates: templates,
            sender: .init(address: "noreply@example.com", name: "Ex"))
        let message = try handler.compose(
            .init(to: ["a@example.com"], template: "hello", templateData: ["name": "<Ann>"]))
        #expect(message.subject == "Hello <Ann>")
        #expect(message.text == "Hi <Ann> & welcome")
        #expect(message.html == "<p>Hi &lt;Ann&gt;</p>")
        #expect(throws: TaskFailure.self) { try handler.compose(.init(to: ["a@example.com"], template: "missing")) }
        #expect(throws: TaskFailure.self) {
            try handler.compose(.init(to: ["not an address"], subject: "s", body: "b"))
        }
        #expect(throws: TaskFailure.self) {
            try handler.compose(.init(to: ["a@example.com"], subject: "x\r\nBcc: evil@example.com", body: "b"))
        }
    }

    @Test("the file mailer writes one complete .eml per message")
    func fileMailer() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)")
        let mailer = FileMailer(directory: directory)
        let receipt = try await mailer.send(
            EmailMessage(
                to: ["a@example.com", "b@example.com"], from: "noreply@example.com", fromName: "Envoyou Café",
                subject: "Grüße", text: "Line 1\nLine 2", html: "<b>hi</b>"))
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files.count == 1 && files[0].hasSuffix(".eml"))
        let contents = try String(contentsOf: directory.appendingPathComponent(files[0]), encoding: .utf8)
        #expect(contents.contains("Message-ID: \(receipt.messageID)"))
        #expect(contents.contains("To: a@example.com, b@example.com"))
        #expect(contents.contains("Subject: =?utf-8?B?"))
        #expect(contents.contains("Line 1\r\nLine 2"))
        #expect(contents.contains("Content-Type: multipart/alternative"))
    }

    @Test("the repository's welcome template renders")
    func repositoryTemplates() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let loaded = try await EmailTemplates.load(directory: root.appendingPathComponent("templates/email").path)
        let rendered = try loaded.render("welcome", data: ["name": "Ann", "email": "ann@example.com"])
        #expect(rendered.subject == "Welcome to Envoyou, Ann")
        #expect(rendered.text.contains("ann@example.com"))
        #expect(rendered.html?.contains("<strong>ann@example.com</strong>") == true)
    }
}
