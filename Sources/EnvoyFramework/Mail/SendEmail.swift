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

/// The `send_email` task: renders a template (or takes a literal body) and hands it to the `Mailer`.
public struct SendEmail: TaskHandler {
    /// What application code queues: recipients, and either a body or a template with its data.
    public struct Payload: Codable, Sendable, Equatable {
        /// Recipient addresses.
        public var to: [String]
        /// The subject; a template's own subject is used when this is nil.
        public var subject: String?
        /// A literal plain-text body (when no template is named).
        public var body: String?
        /// The template's name under `templates/email/`.
        public var template: String?
        /// Values for the template's placeholders.
        public var templateData: [String: String]

        /// A payload for one recipient or several.
        public init(
            to: [String], subject: String? = nil, body: String? = nil, template: String? = nil,
            templateData: [String: String] = [:]
        ) {
            self.to = to
            self.subject = subject
            self.body = body
            self.template = template
            self.templateData = templateData
        }
    }

    /// `send_email`.
    public static let taskType = "send_email"
    /// `email`.
    public static let queue = "email"

    let mailer: any Mailer
    let templates: EmailTemplates
    let sender: EmailSender

    /// A handler sending through `mailer` as `sender`.
    public init(mailer: any Mailer, templates: EmailTemplates, sender: EmailSender) {
        self.mailer = mailer
        self.templates = templates
        self.sender = sender
    }

    /// Renders and sends; logs the recipient count, the provider's message id and the outcome.
    public func handle(_ payload: Payload, context: TaskContext) async throws {
        let message = try compose(payload)
        let receipt = try await mailer.send(message)
        context.logger.info(
            "email sent",
            metadata: ["mail.recipients": "\(message.to.count)", "mail.message_id": "\(receipt.messageID)"])
    }

    /// The message a payload describes.
    public func compose(_ payload: Payload) throws(TaskFailure) -> EmailMessage {
        var subject = payload.subject
        var text = payload.body
        var html: String?
        if let name = payload.template {
            let rendered = try templates.render(name, data: payload.templateData)
            subject = subject ?? rendered.subject
            text = rendered.text
            html = rendered.html
        }
        guard let subject, let text else {
            throw .permanent("an email needs a subject and a body or template")
        }
        let message = EmailMessage(
            to: payload.to, from: sender.address, fromName: sender.name, subject: subject, text: text, html: html)
        try message.validate()
        return message
    }
}
