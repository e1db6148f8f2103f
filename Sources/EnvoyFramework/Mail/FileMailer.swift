import Foundation
import NIOPosix

/// The embedded `Mailer`: writes each message as an RFC 5322 `.eml` file into a directory.
/// Files appear atomically (written aside, then renamed), so a reader never sees half a message.
public struct FileMailer: Mailer {
    /// The directory the files go to (created if missing).
    public let directory: URL

    /// A mailer writing into `directory`.
    public init(directory: URL) {
        self.directory = directory
    }

    /// Writes the message off the concurrency threads and returns its Message-ID.
    public func send(_ message: EmailMessage) async throws -> MailReceipt {
        try message.validate()
        let id = UUID().uuidString.lowercased()
        let domain = message.from.split(separator: "@").last.map(String.init) ?? "localhost"
        let messageID = "<\(id)@\(domain)>"
        let contents = Self.render(message, messageID: messageID, date: Date())
        let stamp = Int(Date().timeIntervalSince1970 * 1000)
        let target = directory.appendingPathComponent("\(stamp)-\(id).eml")
        let directory = self.directory
        try await NIOThreadPool.singleton.runIfActive {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let partial = directory.appendingPathComponent(".\(id).eml.partial")
            try Data(contents.utf8).write(to: partial)
            try FileManager.default.moveItem(at: partial, to: target)
        }
        return MailReceipt(messageID: messageID)
    }

    /// The message as MIME text (multipart/alternative when there is an HTML body).
    static func render(_ message: EmailMessage, messageID: String, date: Date) -> String {
        let dateFormatter = DateFormatter()
        dateFormatter.locale = Locale(identifier: "en_US_POSIX")
        dateFormatter.timeZone = TimeZone(identifier: "UTC")
        dateFormatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let from = message.fromName.map { "\(encodeHeader($0)) <\(message.from)>" } ?? message.from
        var lines = [
            "From: \(from)",
            "To: \(message.to.joined(separator: ", "))",
            "Subject: \(encodeHeader(message.subject))",
            "Date: \(dateFormatter.string(from: date))",
            "Message-ID: \(messageID)",
            "MIME-Version: 1.0",
        ]
        if let html = message.html {
            let boundary = "envoy-\(UUID().uuidString)"
            lines +=
                [
                    "Content-Type: multipart/alternative; boundary=\"\(boundary)\"", "",
                    "--\(boundary)", "Content-Type: text/plain; charset=utf-8",
                ] + body(message.text) + [
                    "", "--\(boundary)", "Content-Type: text/html; charset=utf-8",
                ] + body(html) + [
                    "",
                    "--\(boundary)--",
                ]
        } else {
            lines += ["Content-Type: text/plain; charset=utf-8"] + body(message.text)
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// RFC 2047 encoded-word for non-ASCII header text.
    private static func encodeHeader(_ text: String) -> String {
        guard text.contains(where: { !$0.isASCII }) else { return text }
        return "=?utf-8?B?\(Data(text.utf8).base64EncodedString())?="
    }

    /// A part's encoding header, blank line and body: readable 8bit text, or base64 if a line is too long for it.
    private static func body(_ text: String) -> [String] {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(
            separator: "\n", omittingEmptySubsequences: false)
        if lines.allSatisfy({ $0.utf8.count <= 998 }) {
            return ["Content-Transfer-Encoding: 8bit", ""] + lines.map(String.init)
        }
        let encoded = Data(text.utf8).base64EncodedString(options: [
            .lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed,
        ])
        return ["Content-Transfer-Encoding: base64", "", encoded]
    }
}
