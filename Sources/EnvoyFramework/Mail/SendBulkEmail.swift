import Logging

/// The `send_bulk_email` task: one message to many recipients, each getting their own copy (no recipient sees
/// another). Payloads above the mailer's `maxRecipientsPerMessage` are split into batch tasks, so a failed batch
/// retries alone.
public struct SendBulkEmail: TaskHandler {
    /// One recipient and their values for `%recipient.NAME%` placeholders.
    public struct Recipient: Codable, Sendable, Equatable {
        /// The address.
        public var address: String
        /// Values for this recipient's placeholders.
        public var variables: [String: String]

        /// A recipient with their values.
        public init(address: String, variables: [String: String] = [:]) {
            self.address = address
            self.variables = variables
        }
    }

    /// What application code queues: the recipients and the content (flattened into one JSON object).
    public struct Payload: Codable, Sendable, Equatable {
        /// Every recipient.
        public var recipients: [Recipient]
        /// What the email says.
        public var content: EmailContent

        /// A bulk email.
        public init(recipients: [Recipient], content: EmailContent) {
            self.recipients = recipients
            self.content = content
        }

        /// The payload split into batches of at most `size` recipients, in order.
        public func batches(of size: Int) -> [Payload] {
            stride(from: 0, to: recipients.count, by: max(1, size)).map {
                Payload(recipients: Array(recipients[$0..<min($0 + max(1, size), recipients.count)]), content: content)
            }
        }

        private enum CodingKeys: String, CodingKey { case recipients }

        /// Decodes recipients and the content's fields from one object.
        public init(from decoder: any Decoder) throws {
            recipients = try decoder.container(keyedBy: CodingKeys.self).decode([Recipient].self, forKey: .recipients)
            content = try EmailContent(from: decoder)
        }

        /// Encodes recipients and the content's fields into one object.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(recipients, forKey: .recipients)
            try content.encode(to: encoder)
        }
    }

    /// `send_bulk_email`.
    public static let taskType = "send_bulk_email"
    /// `email`.
    public static let queue = "email"
    let mailer: any Mailer
    let composer: EmailComposer
    let queue: any TaskQueue

    /// A handler sending through `mailer`, splitting large payloads into tasks on `queue`.
    public init(mailer: any Mailer, composer: EmailComposer, queue: any TaskQueue) {
        self.mailer = mailer
        self.composer = composer
        self.queue = queue
    }

    /// Sends one batch, or splits a larger payload into batch tasks (deduplicated, so a re-run splits nothing twice).
    public func handle(_ payload: Payload, context: TaskContext) async throws {
        guard payload.recipients.count > mailer.maxRecipientsPerMessage else {
            return try await deliver(composer.message(payload), mailer: mailer, context: context)
        }
        let batches = payload.batches(of: mailer.maxRecipientsPerMessage)
        for (index, batch) in batches.enumerated() {
            try await queue.enqueue(SendBulkEmail.self, batch, deduplicationKey: "bulk:\(context.taskID):\(index)")
        }
        context.logger.info(
            "bulk email split into batches",
            metadata: ["mail.recipients": "\(payload.recipients.count)", "mail.batches": "\(batches.count)"])
    }
}
