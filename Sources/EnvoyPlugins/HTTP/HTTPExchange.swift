import Foundation

/// An outbound HTTP request, as the provider plugins (Mailgun, Paddle) make them.
public struct OutboundRequest: Sendable {
    /// `GET`, `POST`, …
    public var method: String
    /// The absolute URL (`http` or `https`).
    public var url: String
    /// Header fields, in order; a name may repeat.
    public var headers: [(name: String, value: String)]
    /// The body, if any.
    public var body: Body?
    /// Basic authentication, sent as `Authorization` by libcurl (never part of the URL, so never logged).
    public var basicAuth: (user: String, password: String)?
    /// The whole exchange's deadline, connecting included.
    public var timeout: Duration

    /// What a request carries.
    public enum Body: Sendable {
        /// Raw bytes with their content type.
        case bytes([UInt8], contentType: String)
        /// `multipart/form-data` fields, in order; a name may repeat (Mailgun's `to`, `o:tag`).
        case form([(name: String, value: String)])
    }

    /// A request with the given parts.
    public init(
        method: String, url: String, headers: [(name: String, value: String)] = [], body: Body? = nil,
        basicAuth: (user: String, password: String)? = nil, timeout: Duration = .seconds(10)
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.basicAuth = basicAuth
        self.timeout = timeout
    }
}

extension OutboundRequest {
    /// `base` (with or without a trailing slash) joined with `path` (starting with `/`).
    public static func url(_ base: String, _ path: String) -> String {
        (base.hasSuffix("/") ? String(base.dropLast()) : base) + path
    }
}

/// What came back.
public struct OutboundResponse: Sendable {
    /// The HTTP status code.
    public var status: Int
    /// Header fields of the final response, in order.
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: [UInt8]
    /// Connections opened for this exchange (0 when a pooled one was reused).
    public var newConnections: Int

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// Why an exchange produced no response. Messages name the host, never credentials. A struct of named kinds, so
/// that a new kind breaks no caller.
public struct OutboundHTTPError: Error, CustomStringConvertible, Sendable, Equatable {
    /// One line.
    public let description: String

    private init(_ description: String) {
        self.description = description
    }

    /// The deadline passed (connecting or waiting for the response).
    public static func timedOut(_ detail: String) -> OutboundHTTPError { .init("timed out: \(detail)") }
    /// The connection could not be made or broke.
    public static func transport(_ detail: String) -> OutboundHTTPError { .init("transport error: \(detail)") }
    /// The response was larger than the client accepts.
    public static func responseTooLarge(_ limit: Int) -> OutboundHTTPError {
        .init("response larger than \(limit) bytes")
    }
    /// The request itself is unusable (bad URL, bad header).
    public static func invalidRequest(_ detail: String) -> OutboundHTTPError { .init("invalid request: \(detail)") }
    /// The client was shut down.
    public static let shutDown = OutboundHTTPError("the HTTP client is shut down")
}
