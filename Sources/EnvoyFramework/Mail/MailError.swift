/// Why a mailer did not hand a message over. The send tasks map it: rejected to the dead-letter queue, rate
/// limited to a retry at the provider's reset, unavailable to a retry with backoff. A struct with a private kind,
/// so that a new kind of failure breaks no caller's `switch`.
public struct MailError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Kind: Equatable {
        case rejected
        case rateLimited(Duration)
        case unavailable
    }

    private let kind: Kind
    /// What happened, in one line (never a credential).
    public let reason: String

    private init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    /// The provider refused the message; sending it again cannot help.
    public static func rejected(_ reason: String) -> MailError { MailError(.rejected, reason) }

    /// The provider asks for `retryAfter` before the next attempt (a rate limit and its reset).
    public static func rateLimited(retryAfter: Duration, _ reason: String) -> MailError {
        MailError(.rateLimited(retryAfter), reason)
    }

    /// The provider could not be reached, or failed on its side; a later attempt may succeed.
    public static func unavailable(_ reason: String) -> MailError { MailError(.unavailable, reason) }

    /// Whether the provider refused the message for good.
    public var isRejected: Bool { kind == .rejected }

    /// How long the provider asked to wait, when it did.
    public var retryAfter: Duration? {
        if case .rateLimited(let delay) = kind { return delay }
        return nil
    }

    /// The reason, with the wait when there is one.
    public var description: String {
        switch kind {
        case .rejected: "rejected: \(reason)"
        case .rateLimited(let delay): "rate limited: \(reason) (retry after \(delay))"
        case .unavailable: "unavailable: \(reason)"
        }
    }

    /// The task failure this mail failure means: rejected is permanent, rate limited waits for the reset,
    /// unavailable retries with the task's backoff.
    var taskFailure: any Error {
        switch kind {
        case .rejected: TaskFailure.permanent(description)
        case .rateLimited(let delay): TaskFailure.retryAfter(delay, description)
        case .unavailable: self
        }
    }
}
