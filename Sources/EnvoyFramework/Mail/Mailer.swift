/// An email ready to send: recipients, sender, subject and rendered bodies.
public struct EmailMessage: Codable, Sendable, Equatable {
    /// Recipient addresses.
    public var to: [String]
    /// The sender's address.
    public var from: String
    /// The sender's display name.
    public var fromName: String?
    /// The subject line.
    public var subject: String
    /// The plain-text body.
    public var text: String
    /// An optional HTML body, sent as an alternative to the text.
    public var html: String?

    /// A message with the given parts.
    public init(to: [String], from: String, fromName: String? = nil, subject: String, text: String, html: String? = nil)
    {
        self.to = to
        self.from = from
        self.fromName = fromName
        self.subject = subject
        self.text = text
        self.html = html
    }

    /// Checks what a provider would reject or what could forge headers; the error is permanent.
    public func validate() throws(TaskFailure) {
        if to.isEmpty { throw .permanent("an email needs at least one recipient") }
        for address in to + [from] where !EmailAddress.isValid(address) {
            throw .permanent("not a valid email address: \(address)")
        }
        for header in [subject, fromName ?? ""]
        where header.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) {
            throw .permanent("line breaks are not allowed in a header")
        }
    }
}

/// What a provider says about a message it accepted.
public struct MailReceipt: Sendable, Equatable {
    /// The provider's message id (Mailgun's `id`, or the `.eml` file's Message-ID).
    public var messageID: String

    /// A receipt for `messageID`.
    public init(messageID: String) {
        self.messageID = messageID
    }
}

/// Sends email. Embedded: `FileMailer` (writes `.eml` files); Mailgun: a plugin.
/// Throw `TaskFailure.permanent` for rejections that retrying cannot fix, `.retryAfter` when told to wait.
public protocol Mailer: Sendable {
    /// Hands `message` to the provider.
    func send(_ message: EmailMessage) async throws -> MailReceipt
}

/// Address checks shared by validation and routes.
public enum EmailAddress {
    /// A pragmatic check: one `@`, a non-empty local part, a dotted domain, no spaces or control characters.
    public static func isValid(_ address: String) -> Bool {
        guard address.utf8.count <= 254,
            !address.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 32 } ?? false })
        else { return false }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64 else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return labels.count >= 2 && labels.allSatisfy { !$0.isEmpty && !$0.hasPrefix("-") && !$0.hasSuffix("-") }
            && !parts[1].contains(where: { "<>()[],;:\\\"".contains($0) })
    }
}
