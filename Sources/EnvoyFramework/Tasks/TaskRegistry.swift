import Foundation

/// The task types a worker can run, by name.
public struct TaskRegistry: Sendable {
    struct Entry: Sendable {
        var queue: String
        var retryPolicy: RetryPolicy
        var run: @Sendable ([UInt8], TaskContext) async throws -> Void
    }

    private(set) var entries: [String: Entry] = [:]

    /// An empty registry.
    public init() {}

    /// Registers `handler` under its `taskType`; a later registration of the same type replaces it.
    public mutating func register<H: TaskHandler>(_ handler: H) {
        entries[H.taskType] = Entry(queue: H.queue, retryPolicy: H.retryPolicy) { bytes, context in
            let payload: H.Payload
            do {
                payload = try JSONDecoder().decode(H.Payload.self, from: Data(bytes))
            } catch {
                throw TaskFailure.permanent("payload does not decode as \(H.Payload.self): \(error)")
            }
            try await handler.handle(payload, context: context)
        }
    }

    /// The queues the registered task types go to.
    public var queues: [String] { Set(entries.values.map(\.queue)).sorted() }

    /// The registered task type names.
    public var taskTypes: [String] { entries.keys.sorted() }

    func entry(for type: String) -> Entry? { entries[type] }
}
