import HTTPTypes
import Hummingbird
import Synchronization

/// The cache read each cached route declared, when it was registered, that it starts with: the rate limiter looks
/// up the matched route's and sends it with its decision (one round trip for both where the store can).
public final class DeclaredReadAheads<Context: RequestContext>: Sendable {
    /// A route's read for one request; nil when the request makes none (no user, an invalid query).
    public typealias Read = @Sendable (Request, Context) -> ChainedRead?

    private let reads = Mutex([String: Read]())

    /// An empty table; routes declare their reads as they are registered.
    public init() {}

    /// Declares that `GET path` (a route template, as registered) starts with `read`.
    public func declare(get path: String, _ read: @escaping Read) {
        let template = RouterPath(path).description
        reads.withLock { $0[template] = read }
    }

    /// The read the request's matched route declared, made for this request.
    public func read(for request: Request, context: Context) -> ChainedRead? {
        guard request.method == .get, let template = context.endpointPath else { return nil }
        return reads.withLock { $0[template] }?(request, context)
    }
}
