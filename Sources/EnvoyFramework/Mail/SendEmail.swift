import Logging

/// Who email comes from.
public struct EmailSender: Sendable, Equatable {
    /// The sender address (`EMAIL_FROM`).
    public var address: String
    /// The display name (`EMAIL_FROM_NAME`).
    public var name: String?

    /// A sender with the given address and name.
    public init(address: String, name: String? = nil) {
        self.address = address
        self.name = name
    }
}

/// The `send_email` task: renders a template (or takes a literal body) and hands the message to the `Mailer`.
public struct SendEmail: TaskHandler {
    /// What application code queues: recipients and the content (flattened into one JSON object).
    public struct Payload: Codable, Sendable, Equatable {
        /// Recipient addresses.
        public var to: [String]
        /// Copy recipients.
        public var cc: [String]?
        /// Blind copy recipients.
        public var bcc: [String]?
        /// What the email says.
        public var content: EmailContent

        /// A payload for one recipient or several, with a literal body or a template and its data.
        public init(
            to: [String], subject: String? = nil, body: String? = nil, template: String? = nil,
            templateData: [String: String] = [:]
        ) {
            self.init(
                to: to,
                content: EmailContent(subject: subject, body: body, template: template, templateData: templateData))
        }

        /// A payload with every option.
        public init(to: [String], cc: [String]? = nil, bcc: [String]? = nil, content: EmailContent) {
            self.to = to
            self.cc = cc
            self.bcc = bcc
            self.content = content
        }

        private enum CodingKeys: String, CodingKey { case to, cc, bcc }

        /// Decodes recipients and the content's fields from one object.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            to = try container.decode([String].self, forKey: .to)
            cc = try container.decodeIfPresent([String].self, forKey: .cc)
            bcc = try container.decodeIfPresent([String].self, forKey: .bcc)
            content = try EmailContent(from: decoder)
        }

        /// Encodes recipients and the content's fields into one object.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(to, forKey: .to)
            try container.encodeIfPresent(cc, forKey: .cc)
            try container.encodeIfPresent(bcc, forKey: .bcc)
            try content.encode(to: encoder)
        }
    }

    /// `send_email`.
    public static let taskType = "send_email"
    /// `email`.
    public static let queue = "email"

    let mailer: any Mailer
    let composer: EmailComposer

    /// A handler sending through `mailer` what `composer` makes of each payload.
    public init(mailer: any Mailer, composer: EmailComposer) {
        self.mailer = mailer
        self.composer = composer
    }

    /// Renders and sends; logs the recipient count, the provider's message id and the outcome.
    public func handle(_ payload: Payload, context: TaskContext) async throws {
        try await deliver(composer.message(payload), mailer: mailer, context: context)
    }
}

/// Sends `message` and logs what happened (never the message's content or any credential).
func deliver(_ message: EmailMessage, mailer: any Mailer, context: TaskContext) async throws {
    var message = message
    if message.messageID == nil {
        let domain = message.from.split(separator: "@").last.map(String.init) ?? "localhost"
        message.messageID = "<\(context.taskID)@\(domain)>"
    }
    let receipt: MailReceipt
    do {
        receipt = try await mailer.send(message)
    } catch let error as MailError {
        context.logger.warning(
            "email not sent", metadata: ["mail.recipients": "\(message.recipientCount)", "mail.outcome": "\(error)"])
        throw error.taskFailure
    }
    context.logger.info(
        "email sent",
        metadata: [
            "mail.recipients": "\(message.recipientCount)", "mail.message_id": "\(receipt.messageID)",
            "mail.outcome": "accepted",
        ])
}
