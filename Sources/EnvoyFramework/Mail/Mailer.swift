/// An email ready to send: recipients, sender, subject, bodies (or a provider-stored template) and options.
public struct EmailMessage: Sendable, Equatable {
    /// Recipient addresses.
    public var to: [String]
    /// Copy recipients.
    public var cc: [String] = []
    /// Blind copy recipients.
    public var bcc: [String] = []
    /// The sender's address.
    public var from: String
    /// The sender's display name.
    public var fromName: String?
    /// The subject line.
    public var subject: String
    /// The plain-text body.
    public var text: String?
    /// An HTML body, sent as an alternative to the text.
    public var html: String?
    /// A template stored at the provider (Mailgun's `template`), rendered there with its variables.
    public var storedTemplate: StoredTemplate?
    /// Provider tags for analytics (Mailgun's `o:tag`; a provider may limit how many).
    public var tags: [String] = []
    /// Asks the provider to accept but not deliver (Mailgun's `o:testmode`).
    public var testMode = false
    /// Custom data attached to the message and echoed in provider events (Mailgun's `v:NAME`).
    public var variables: [String: String] = [:]
    /// Extra MIME headers (Mailgun's `h:NAME`).
    public var headers: [String: String] = [:]
    /// The `Message-ID` to send with, e.g. `<task-id@example.com>`; nil lets the provider choose. The send tasks
    /// derive it from the task, so a task re-run after a crash re-sends under the same id: receivers collapse
    /// the copies, and the file mailer replaces its file instead of writing a second one.
    public var messageID: String?
    /// Per-recipient values for `%recipient.NAME%` placeholders. When set, every recipient gets a copy of their
    /// own and sees no other recipient (Mailgun batch sending); every `to` address needs an entry.
    public var recipientVariables: [String: [String: String]]?

    /// A message with the given parts; set the optional fields afterwards.
    public init(
        to: [String], from: String, fromName: String? = nil, subject: String, text: String?, html: String? = nil
    ) {
        self.to = to
        self.from = from
        self.fromName = fromName
        self.subject = subject
        self.text = text
        self.html = html
    }

    /// Every recipient: to, cc and bcc.
    public var recipientCount: Int { to.count + cc.count + bcc.count }

    /// Checks what a provider would reject or what could forge headers.
    public func validate() throws(InvalidEmail) {
        if to.isEmpty { throw InvalidEmail("an email needs at least one recipient") }
        for address in to + cc + bcc + [from] where !EmailAddress.isValid(address) {
            throw InvalidEmail("not a valid email address: \(address)")
        }
        if text == nil && html == nil && storedTemplate == nil {
            throw InvalidEmail("an email needs a text or HTML body or a stored template")
        }
        for header in [subject, fromName ?? ""] + Array(headers.keys) + Array(headers.values)
        where header.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) {
            throw InvalidEmail("line breaks are not allowed in a header")
        }
        for name in headers.keys where name.isEmpty || name.contains(where: { $0 == ":" || $0.isWhitespace }) {
            throw InvalidEmail("not a valid header name: \(name)")
        }
        if let recipientVariables, let missing = to.first(where: { recipientVariables[$0] == nil }) {
            throw InvalidEmail("recipient variables are missing for \(missing)")
        }
    }
}

/// A template kept at the provider, named, with the values it is rendered with.
public struct StoredTemplate: Codable, Sendable, Equatable {
    /// The template's name at the provider.
    public var name: String
    /// Values for its placeholders (Mailgun's `t:variables`).
    public var variables: [String: String]

    /// A stored template reference.
    public init(name: String, variables: [String: String] = [:]) {
        self.name = name
        self.variables = variables
    }
}

/// What a provider says about a message it accepted.
public struct MailReceipt: Sendable, Equatable {
    /// The provider's message id (Mailgun's `id`, or the `.eml` file's Message-ID; a batch's first file's).
    public var messageID: String

    /// A receipt for `messageID`.
    public init(messageID: String) {
        self.messageID = messageID
    }
}

/// Sends email. Embedded: `FileMailer` (writes `.eml` files); Mailgun: a plugin.
/// Throw `MailError` (rejected, rate limited, unavailable); the send tasks map it to dead letter or retry.
public protocol Mailer: Sendable {
    /// The most recipients one message may have at this provider; bulk email is sent in batches of this size.
    var maxRecipientsPerMessage: Int { get }
    /// Hands `message` to the provider.
    func send(_ message: EmailMessage) async throws -> MailReceipt
}

extension Mailer {
    /// No limit of its own: a bulk email goes as one message.
    public var maxRecipientsPerMessage: Int { Int.max }
}
