import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Gives every request an id: the one a trusted proxy sent in `X-Request-Id` (1–128 characters of
/// `A-Z a-z 0-9 . _ : -`), else a new one. It is on every log line written for the request (`request.id`) and
/// comes back in the response's `X-Request-Id`. A client that is not a trusted proxy cannot choose it.
public struct RequestIDMiddleware<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let resolver: ClientAddressResolver

    /// Ids from the proxies `resolver` trusts are kept.
    public init(resolver: ClientAddressResolver) {
        self.resolver = resolver
    }

    /// Names the request, then runs the rest of the chain and returns the name with the response.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var context = context
        let peer = context.remoteAddress.flatMap { IPAddress($0) }
        let forwarded =
            peer.map(resolver.isTrusted) == true ? request.headers[.xRequestID].flatMap(Self.acceptable) : nil
        let id = forwarded ?? UUID.random().uuidString.lowercased()
        context.logger[metadataKey: "request.id"] = .string(id)
        var response = try await next(request, context)
        response.headers[.xRequestID] = id
        return response
    }

    /// `text` if it is a safe id (nothing that could split a log line or a header), else nil.
    static func acceptable(_ text: String) -> String? {
        guard (1...128).contains(text.utf8.count),
            text.utf8.allSatisfy({ byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || ".-_:".utf8.contains(byte)
            })
        else { return nil }
        return text
    }
}

extension HTTPField.Name {
    /// `X-Request-Id`.
    public static var xRequestID: Self { .init("X-Request-Id")! }
}
