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

/// The forwarding header a deployment's trusted proxies set; the other one is never read.
public enum ForwardingHeader: String, Sendable, Equatable {
    /// The de-facto `X-Forwarded-For: client, proxy1, …`.
    case xForwardedFor = "x-forwarded-for"
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    case forwarded
}

/// Finds the client's address: the socket peer, unless that peer is a trusted proxy, in which case the one
/// forwarding header those proxies set is read right to left through trusted hops only. An entry that names no
/// address (`unknown`, an obfuscated `_name`, garbage) stops the walk at the nearest trusted hop, which then
/// counts as the client.
public struct ClientAddressResolver: Sendable {
    /// Networks whose forwarding header is believed.
    public var trustedProxies: [IPNetwork]
    /// The header they set.
    public var header: ForwardingHeader

    /// A resolver trusting the given proxy networks (none: the socket address is the client).
    public init(trustedProxies: [IPNetwork] = [], header: ForwardingHeader = .xForwardedFor) {
        self.trustedProxies = trustedProxies
        self.header = header
    }

    /// The client's address for a request arriving from `peer` with `headers`.
    public func clientAddress(peer: IPAddress?, headers: HTTPFields) -> IPAddress? {
        guard let peer, isTrusted(peer) else { return peer }
        var closest = peer
        for hop in forwardedChain(headers).reversed() {
            guard let address = Self.address(ofNode: hop) else { return closest }
            if !isTrusted(address) { return address }
            closest = address
        }
        return closest
    }

    /// Whether `address` is one of the trusted proxies.
    public func isTrusted(_ address: IPAddress) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// The nodes a request passed through, client first, from the configured header only.
    private func forwardedChain(_ headers: HTTPFields) -> [Substring] {
        switch header {
        case .xForwardedFor:
            return headers[values: .xForwardedFor].flatMap { Self.split($0[...], on: ",") }
        case .forwarded:
            return headers[values: .forwarded].flatMap { Self.split($0[...], on: ",") }.map { element in
                for pair in Self.split(element, on: ";") {
                    guard let equals = pair.firstIndex(of: "=") else { continue }
                    if pair[..<equals].trimmingSpacesAndTabs().lowercased() == "for" {
                        return pair[pair.index(after: equals)...]
                    }
                }
                return "unknown"  // an element without `for=` names no address
            }
        }
    }

    /// `text` split on `separator` outside double quotes.
    static func split(_ text: Substring, on separator: Character) -> [Substring] {
        var parts: [Substring] = []
        var start = text.startIndex
        var quoted = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "\"" {
                quoted.toggle()
            } else if character == separator && !quoted {
                parts.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        parts.append(text[start...])
        return parts
    }

    /// The address in one node: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`, each optionally
    /// quoted and spaced; nil for `unknown`, obfuscated names and anything else.
    static func address(ofNode node: Substring) -> IPAddress? {
        var value = node.trimmingSpacesAndTabs()
        if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") {
            value = value.dropFirst().dropLast().trimmingSpacesAndTabs()
        }
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]") else { return nil }
            let rest = value[value.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isASCIIDigit)) else {
                return nil
            }
            return IPAddress(value[value.index(after: value.startIndex)..<close])
        }
        if let colon = value.firstIndex(of: ":"), value[value.index(after: colon)...].allSatisfy({ $0 != ":" }) {
            // One colon: an IPv4 address with a port.
            guard value[value.index(after: colon)...].allSatisfy(\.isASCIIDigit) else { return nil }
            return IPAddress(value[..<colon])
        }
        return IPAddress(value)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
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
