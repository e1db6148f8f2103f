/// Queues email for the worker after checking it, so that a bad address, an unknown template or a missing
/// variable fails the caller now (`InvalidEmail`) instead of a task later.
public struct EmailQueue: Sendable {
    let queue: any TaskQueue
    let composer: EmailComposer

    /// Email queued on `queue`, checked with `composer`.
    public init(queue: any TaskQueue, composer: EmailComposer) {
        self.queue = queue
        self.composer = composer
    }

    /// Checks and queues one email (`send_email`).
    @discardableResult
    public func send(_ payload: SendEmail.Payload, deduplicationKey: String? = nil) async throws -> EnqueueResult {
        try await queue.enqueue(try task(payload, deduplicationKey: deduplicationKey))
    }

    /// Checks one email and returns its `send_email` task, for a caller that commits it with its own rows.
    public func task(_ payload: SendEmail.Payload, deduplicationKey: String? = nil) throws -> NewTask {
        _ = try composer.message(payload)
        return try NewTask(SendEmail.self, payload, deduplicationKey: deduplicationKey)
    }

    /// Checks and queues a bulk email (`send_bulk_email`): every recipient is checked now; the worker sends
    /// batches of at most its mailer's `maxRecipientsPerMessage`.
    @discardableResult
    public func sendBulk(_ payload: SendBulkEmail.Payload, deduplicationKey: String? = nil) async throws
        -> EnqueueResult
    {
        guard !payload.recipients.isEmpty else { throw InvalidEmail("a bulk email needs at least one recipient") }
        var seen = Set<String>()
        if let twice = payload.recipients.first(where: { !seen.insert($0.address.lowercased()).inserted }) {
            throw InvalidEmail("\(twice.address) is listed twice")
        }
        _ = try composer.message(payload)
        return try await queue.enqueue(SendBulkEmail.self, payload, deduplicationKey: deduplicationKey)
    }
}
