import EnvoyFramework
import Foundation

/// Paddle Billing's API over libcurl: Bearer key, sandbox or production base, Paddle's error envelope parsed,
/// 429 (`Retry-After`) and 5xx retried a few times before the error reaches the caller.
public struct PaddleClient: Sendable {
    /// Key, base and retry limits.
    public struct Configuration: Sendable {
        /// The API key (sent as a Bearer token; never logged).
        public var apiKey: String
        /// `https://sandbox-api.paddle.com`, `https://api.paddle.com`, or a mock.
        public var baseURL: String
        /// One request's deadline.
        public var timeout: Duration
        /// Attempts per call, the first included.
        public var maxAttempts: Int
        /// The longest wait between attempts (a longer `Retry-After` ends the retries).
        public var maxRetryDelay: Duration

        /// A configuration for `environment` (`sandbox` or `production`) unless `baseURL` overrides it.
        public init(
            apiKey: String, environment: String = "sandbox", baseURL: String? = nil, timeout: Duration = .seconds(10),
            maxAttempts: Int = 3, maxRetryDelay: Duration = .seconds(5)
        ) {
            self.apiKey = apiKey
            self.baseURL =
                baseURL ?? (environment == "production" ? "https://api.paddle.com" : "https://sandbox-api.paddle.com")
            self.timeout = timeout
            self.maxAttempts = maxAttempts
            self.maxRetryDelay = maxRetryDelay
        }
    }

    let configuration: Configuration
    let client: CurlHTTPClient

    /// A client for `configuration`, sharing `client`'s connections.
    public init(configuration: Configuration, client: CurlHTTPClient = CurlHTTPClient()) {
        self.configuration = configuration
        self.client = client
    }

    /// `GET /subscriptions/{id}`.
    public func subscription(id: String) async throws -> PaddleSubscription {
        try await get("/subscriptions/\(try Self.pathSegment(id))")
    }

    /// `GET /customers/{id}`.
    public func customer(id: String) async throws -> PaddleCustomer {
        try await get("/customers/\(try Self.pathSegment(id))")
    }

    /// GETs `path` and decodes the envelope's `data`, retrying 429 and 5xx.
    public func get<T: Decodable>(_ path: String) async throws -> T {
        let request = OutboundRequest(
            method: "GET", url: OutboundRequest.url(configuration.baseURL, path),
            headers: [("Authorization", "Bearer \(configuration.apiKey)"), ("Accept", "application/json")],
            timeout: configuration.timeout)
        var attempt = 1
        while true {
            let outcome: Result<OutboundResponse, PaddleAPIError>
            do {
                outcome = .success(try await client.execute(request))
            } catch let error as OutboundHTTPError {
                outcome = .failure(.unreachable("\(error)"))
            }
            switch outcome {
            case .success(let response) where (200..<300).contains(response.status):
                do {
                    return try JSONDecoder().decode(Envelope<T>.self, from: Data(response.body)).data
                } catch {
                    throw PaddleAPIError.unexpectedReply("\(T.self) did not decode: \(error)")
                }
            case .success(let response):
                let error = PaddleAPIError(response: response)
                let wait: Duration
                switch response.status {
                case 429: wait = .seconds(Int(response.header("Retry-After") ?? "") ?? 1)
                case 500...: wait = .milliseconds(200 * (1 << (attempt - 1)))
                default: throw error
                }
                guard attempt < configuration.maxAttempts, wait <= configuration.maxRetryDelay else { throw error }
                try await Task.sleep(for: wait)
            case .failure(let error):
                guard attempt < configuration.maxAttempts else { throw error }
                try await Task.sleep(for: .milliseconds(200 * (1 << (attempt - 1))))
            }
            attempt += 1
        }
    }

    /// An id as one path segment; ids with anything but letters, digits, `_` and `-` are refused.
    static func pathSegment(_ id: String) throws(PaddleAPIError) -> String {
        guard !id.isEmpty, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else { throw .invalidID(id) }
        return id
    }

    private struct Envelope<T: Decodable>: Decodable {
        var data: T
    }
}

/// Paddle API failures, with Paddle's own error code and detail when it sent them. A struct, so that a new kind
/// breaks no caller.
public struct PaddleAPIError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The HTTP status Paddle answered with; nil when none came.
    public let status: Int?
    /// Paddle's error code (`entity_not_found`), or a kind of Envoy's own (`unreachable`, `unexpected_reply`,
    /// `invalid_id`).
    public let code: String
    /// What Paddle said, or what went wrong.
    public let detail: String

    private init(status: Int?, code: String, detail: String) {
        self.status = status
        self.code = code
        self.detail = detail
    }

    /// Paddle answered with an error envelope (`error.code`, `error.detail`).
    public static func rejected(status: Int, code: String, detail: String) -> PaddleAPIError {
        PaddleAPIError(status: status, code: code, detail: detail)
    }
    /// No response (timeout, refused, TLS).
    public static func unreachable(_ detail: String) -> PaddleAPIError {
        PaddleAPIError(status: nil, code: "unreachable", detail: detail)
    }
    /// A 2xx whose body was not what the endpoint returns.
    public static func unexpectedReply(_ detail: String) -> PaddleAPIError {
        PaddleAPIError(status: nil, code: "unexpected_reply", detail: detail)
    }
    /// An id that cannot be a Paddle id.
    public static func invalidID(_ id: String) -> PaddleAPIError {
        PaddleAPIError(status: nil, code: "invalid_id", detail: String(id.prefix(64)))
    }

    init(response: OutboundResponse) {
        struct Body: Decodable {
            struct Detail: Decodable {
                var code: String?
                var detail: String?
            }
            var error: Detail?
        }
        let body = try? JSONDecoder().decode(Body.self, from: Data(response.body))
        self = .rejected(
            status: response.status, code: body?.error?.code ?? "http_\(response.status)",
            detail: body?.error?.detail ?? String(decoding: response.body.prefix(200), as: UTF8.self))
    }

    /// Whether the caller may try again later (rate limits, server errors, no response).
    public var isTransient: Bool {
        if let status { return status == 429 || status >= 500 }
        return code == "unreachable"
    }

    /// One line, without the key.
    public var description: String {
        if let status { return "paddle \(status) \(code): \(detail)" }
        switch code {
        case "unreachable": return "paddle unreachable: \(detail)"
        case "invalid_id": return "not a Paddle id: \(detail)"
        default: return "paddle reply not understood: \(detail)"
        }
    }
}
