import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The request context of Envoy's backend: who is calling, from where, and what their token said.
public struct EnvoyRequestContext: IdentifiedRequestContext, ReadAheadRequestContext, RemoteAddressRequestContext {
    /// Hummingbird's core storage.
    public var coreContext: CoreRequestContextStorage
    /// Client address and authenticated user.
    public var identity = RequestIdentity()
    /// Why a presented token was refused (nil when none was presented or it was valid).
    public var tokenRejection: TokenRejection?
    /// The cache read the rate limiter made ahead for this request's route, if any.
    public var prefetched: PrefetchedRead?
    /// The socket peer.
    public let remoteAddress: SocketAddress?

    /// A context for a request arriving on `source.channel`.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The caller's user id, or a 401 problem saying what is wrong with their credentials.
    public func requireUser() throws -> String {
        if let user = identity.userID { return user }
        guard let tokenRejection else {
            throw Problem.unauthorized("An access token is required (Authorization: Bearer …).")
        }
        throw Problem.unauthorized(
            tokenRejection == .expired
                ? "The access token has expired; log in again." : "The access token is not valid.")
    }
}

/// Verifies a bearer token, if one is presented, and records the user on the context.
/// It never rejects: routes that need a user ask for one, and the limiter counts unauthenticated callers by IP.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = EnvoyRequestContext
    let tokens: AccessTokens

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let header = request.headers[.authorization] else { return try await next(request, context) }
        var context = context
        let parts = header.split(separator: " ", maxSplits: 1)
        if parts.count == 2, parts[0].lowercased() == "bearer" {
            do {
                context.identity.userID = try await tokens.verify(String(parts[1].trimmingSpacesAndTabs()))
            } catch {
                context.tokenRejection = error
            }
        } else {
            context.tokenRejection = .invalid
        }
        return try await next(request, context)
    }
}
