import Foundation
import NIOPosix

/// The embedded `Mailer`: writes each message as an RFC 5322 `.eml` file into a directory.
/// Files appear atomically (written aside, then renamed), so a reader never sees half a message. A message with
/// recipient variables becomes one file per recipient with their `%recipient.NAME%` values filled in, as Mailgun
/// would send it; a stored provider template is recorded by name with its variables.
public struct FileMailer: Mailer, CustomStringConvertible {
    /// `file DIRECTORY`.
    public var description: String { "file \(directory.path)" }

    /// The directory the files go to (created if missing).
    public let directory: URL

    /// One file per recipient: a batch of a thousand keeps a failed write's retry small, as a provider's would.
    public var maxRecipientsPerMessage: Int { 1000 }

    /// A mailer writing into `directory`.
    public init(directory: URL) {
        self.directory = directory
    }

    /// Writes the message off the concurrency threads and returns its (first file's) Message-ID. A message with a
    /// `messageID` is written under a name made from it, replacing the file a previous send of it wrote.
    public func send(_ message: EmailMessage) async throws -> MailReceipt {
        try message.validate()
        let domain = message.from.split(separator: "@").last.map(String.init) ?? "localhost"
        // `<local@domain>` → `local`: the name of the files, and the stem of each batch copy's own Message-ID.
        let id =
            message.messageID.map { messageID in
                Self.fileSafe(String(messageID.drop { $0 == "<" }.prefix { $0 != "@" && $0 != ">" }))
            } ?? UUID.random().uuidString.lowercased()
        let date = Date()
        let copies =
            message.recipientVariables.map { variables in
                message.to.map { Self.personalised(message, for: $0, values: variables[$0] ?? [:]) }
            } ?? [message]
        let files = copies.enumerated().map { index, copy in
            let messageID =
                copies.count == 1 ? (message.messageID ?? "<\(id)@\(domain)>") : "<\(id).\(index)@\(domain)>"
            return (messageID, Self.render(copy, messageID: messageID, date: date))
        }
        let prefix = message.messageID == nil ? "\(Int(date.timeIntervalSince1970 * 1000))-" : ""
        let directory = self.directory
        try await NIOThreadPool.singleton.runIfActive {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for (index, file) in files.enumerated() {
                let partial = directory.appendingPathComponent(".\(id).\(index).eml.partial")
                try Data(file.1.utf8).write(to: partial)
                // rename(2) replaces an existing file atomically: a re-sent message leaves one file, never half.
                let target = directory.appendingPathComponent("\(prefix)\(id)-\(index).eml")
                guard rename(partial.path, target.path) == 0 else {
                    throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: target.path])
                }
            }
        }
        return MailReceipt(messageID: files[0].0)
    }

    /// A Message-ID reduced to characters safe in a file name.
    private static func fileSafe(_ messageID: String) -> String {
        String(
            messageID.unicodeScalars.map { scalar -> Character in
                CharacterSet.alphanumerics.contains(scalar) || "-.".unicodeScalars.contains(scalar)
                    ? Character(scalar) : "_"
            })
    }

    /// The copy one recipient of a batch gets: only their address, their values substituted.
    static func personalised(_ message: EmailMessage, for address: String, values: [String: String]) -> EmailMessage {
        func fill(_ text: String) -> String {
            values.reduce(text) { $0.replacingOccurrences(of: "%recipient.\($1.key)%", with: $1.value) }
        }
        var copy = message
        copy.to = [address]
        copy.recipientVariables = nil
        copy.subject = fill(message.subject)
        copy.text = message.text.map(fill)
        copy.html = message.html.map(fill)
        return copy
    }

    /// RFC 5322's date format, made once: ICU builds a formatter on its first use (the mock Mailgun's formatter,
    /// made per message, was a sixth of `Benchmarks/emails.sh`'s CPU).
    private static let dateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter
    }()

    /// The message as MIME text (multipart/alternative when there is an HTML body).
    static func render(_ message: EmailMessage, messageID: String, date: Date) -> String {
        let from = message.fromName.map { "\(encodeHeader($0)) <\(message.from)>" } ?? message.from
        var lines = ["From: \(from)", "To: \(message.to.joined(separator: ", "))"]
        if !message.cc.isEmpty { lines.append("Cc: \(message.cc.joined(separator: ", "))") }
        if !message.bcc.isEmpty { lines.append("Bcc: \(message.bcc.joined(separator: ", "))") }
        lines += [
            "Subject: \(encodeHeader(message.subject))",
            "Date: \(dateFormatter.string(from: date))",
            "Message-ID: \(messageID)",
            "MIME-Version: 1.0",
        ]
        lines += message.tags.map { "X-Envoy-Tag: \(encodeHeader($0))" }
        if !message.variables.isEmpty { lines.append("X-Envoy-Variables: \(json(message.variables))") }
        if message.testMode { lines.append("X-Envoy-Test-Mode: yes") }
        lines += message.headers.sorted { $0.key < $1.key }.map { "\($0.key): \(encodeHeader($0.value))" }
        if let template = message.storedTemplate {
            lines += [
                "X-Envoy-Template-Name: \(template.name)",
                "X-Envoy-Template-Variables: \(json(template.variables))",
            ]
        }
        let text =
            message.text ?? (message.storedTemplate.map { "(rendered by the provider from template \($0.name))" } ?? "")
        if let html = message.html {
            let boundary = "envoy-\(UUID.random().uuidString)"
            lines +=
                [
                    "Content-Type: multipart/alternative; boundary=\"\(boundary)\"", "",
                    "--\(boundary)", "Content-Type: text/plain; charset=utf-8",
                ] + body(text) + [
                    "", "--\(boundary)", "Content-Type: text/html; charset=utf-8",
                ] + body(html) + [
                    "",
                    "--\(boundary)--",
                ]
        } else {
            lines += ["Content-Type: text/plain; charset=utf-8"] + body(text)
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    private static func json(_ values: [String: String]) -> String {
        let data = try? JSONSerialization.data(withJSONObject: values, options: [.sortedKeys])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
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
