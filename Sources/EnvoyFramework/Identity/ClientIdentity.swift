import HTTPTypes
import Hummingbird
import NIOCore

/// Who sent a request: the client's address (after trusted proxies) and, once authenticated, the user.
public struct RequestIdentity: Sendable, Equatable {
    /// The client's address; nil only when the transport has none (in-process tests).
    public var clientAddress: IPAddress?
    /// The authenticated user's id, set only from a valid token.
    public var userID: String?

    /// An identity with neither address nor user.
    public init(clientAddress: IPAddress? = nil, userID: String? = nil) {
        self.clientAddress = clientAddress
        self.userID = userID
    }
}

/// A request context that carries a `RequestIdentity` for the limiter and handlers.
public protocol IdentifiedRequestContext: RequestContext {
    /// The identity established so far by the middleware chain.
    var identity: RequestIdentity { get set }
}

/// Finds the client's address: the socket peer, unless that peer is a trusted proxy, in which case
/// `Forwarded` / `X-Forwarded-For` is read right to left through trusted hops only.
public struct ClientAddressResolver: Sendable {
    /// Networks whose forwarding headers are believed.
    public var trustedProxies: [IPNetwork]

    /// A resolver trusting the given proxy networks (none: the socket address is the client).
    public init(trustedProxies: [IPNetwork] = []) {
        self.trustedProxies = trustedProxies
    }

    /// The client's address for a request arriving from `peer` with `headers`.
    public func clientAddress(peer: IPAddress?, headers: HTTPFields) -> IPAddress? {
        guard let peer, isTrusted(peer) else { return peer }
        var closest = peer
        for hop in forwardedChain(headers).reversed() {
            guard let address = IPAddress(hop) else { return closest }
            if !isTrusted(address) { return address }
            closest = address
        }
        return closest
    }

    private func isTrusted(_ address: IPAddress) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// The addresses a request passed through, client first; `Forwarded` wins over `X-Forwarded-For`.
    private func forwardedChain(_ headers: HTTPFields) -> [Substring] {
        let forwarded = headers[values: .forwarded]
        if !forwarded.isEmpty {
            return forwarded.flatMap { $0.split(separator: ",") }.compactMap { element in
                for pair in element.split(separator: ";") {
                    let parts = pair.trimmingSpaces.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "for" else { continue }
                    var value = parts[1].trimmingSpaces
                    if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 {
                        value = value.dropFirst().dropLast()
                    }
                    // `for="[2001:db8::1]:4711"` and `for=192.0.2.1:80` carry ports; drop them.
                    if value.hasPrefix("["), let close = value.firstIndex(of: "]") {
                        return value[value.index(after: value.startIndex)..<close]
                    }
                    if value.filter({ $0 == ":" }).count == 1, let colon = value.firstIndex(of: ":") {
                        return value[..<colon]
                    }
                    return value
                }
                return "unknown"
            }
        }
        return headers[values: .xForwardedFor].flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces }
    }
}

extension HTTPField.Name {
    /// RFC 7239 `Forwarded`.
    public static var forwarded: Self { .init("Forwarded")! }
    /// The de-facto `X-Forwarded-For`.
    public static var xForwardedFor: Self { .init("X-Forwarded-For")! }
}

/// Sets `identity.clientAddress` from the socket peer and, through trusted proxies only, forwarding headers.
public struct ClientAddressMiddleware<Context: IdentifiedRequestContext & RemoteAddressRequestContext>:
    RouterMiddleware
{
    let resolver: ClientAddressResolver

    /// A middleware using `resolver` to decide who the client is.
    public init(resolver: ClientAddressResolver) {
        self.resolver = resolver
    }

    /// Records the client's address, then runs the rest of the chain.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var context = context
        let peer = context.remoteAddress.flatMap { IPAddress($0) }
        context.identity.clientAddress = resolver.clientAddress(peer: peer, headers: request.headers)
        return try await next(request, context)
    }
}
