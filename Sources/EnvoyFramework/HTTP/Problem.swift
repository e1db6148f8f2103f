import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOHTTP1

/// An RFC 9457 problem: the only shape an Envoy error takes on the wire.
public struct Problem: Error, HTTPResponseError, Sendable {
    /// The HTTP status the problem is answered with.
    public var status: HTTPResponse.Status
    /// A short, human-readable summary of the kind of problem.
    public var title: String
    /// What went wrong with this request.
    public var detail: String
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    public var type: String
    /// Extra members, e.g. `field` for validation or `violated-policies` for rate limits.
    public var extensions: [String: ProblemValue]
    /// Headers sent with the problem (`Retry-After`, rate-limit fields).
    public var headers: HTTPFields

    /// A problem with the given status; the title defaults to the status's reason phrase.
    public init(
        _ status: HTTPResponse.Status,
        title: String? = nil,
        detail: String,
        type: String = "about:blank",
        extensions: [String: ProblemValue] = [:],
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.title = title ?? status.reasonPhrase
        self.detail = detail
        self.type = type
        self.extensions = extensions
        self.headers = headers
    }

    /// 400: the body is not the JSON it claims to be.
    public static func malformedJSON(_ detail: String) -> Problem {
        Problem(.badRequest, title: "Malformed JSON", detail: detail)
    }

    /// 422: a field failed validation; the field is named in the body.
    public static func invalidField(_ field: String, _ detail: String) -> Problem {
        Problem(
            .unprocessableContent,
            title: "Validation failed",
            detail: "\(field): \(detail)",
            extensions: ["field": .string(field)]
        )
    }

    /// 401: no usable credentials.
    public static func unauthorized(_ detail: String) -> Problem {
        Problem(.unauthorized, detail: detail, headers: [.wwwAuthenticate: "Bearer"])
    }

    /// 404: the named thing does not exist (or is not the caller's).
    public static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, detail: detail)
    }

    /// Renders the problem as `application/problem+json`.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: encodedBody())))
    }

    /// The problem+json body: `type`, `title`, `status`, `detail` and the extension members, keys sorted.
    public func encodedBody() -> [UInt8] {
        var body: [String: ProblemValue] = extensions
        body["type"] = .string(type)
        body["title"] = .string(title)
        body["status"] = .int(status.code)
        body["detail"] = .string(detail)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Strings, integers and string lists always encode.
        return Array((try? encoder.encode(body)) ?? Data())
    }
}

/// A JSON value inside a problem's extension members.
public enum ProblemValue: Encodable, Sendable, Equatable {
    case string(String)
    case int(Int)
    case strings([String])

    /// Encodes the bare value.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .strings(let value): try container.encode(value)
        }
    }
}

/// Turns every error a handler throws into problem+json; unknown errors become a 500 without internals.
/// With `routes`, the router's 404 for a path that exists under other methods becomes 405 with `Allow`.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteMethods?

    /// Creates the middleware; `routes` (filled once the routes are registered) turns a wrong method into 405.
    public init(routes: RouteMethods? = nil) {
        self.routes = routes
    }

    /// Runs the rest of the chain and converts what it throws.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            var problem = Self.problem(for: error, logger: context.logger)
            if let routes, let notFound = error as? HTTPError, notFound.status == .notFound {
                let allowed = routes.methods(for: request.uri.path)
                if !allowed.isEmpty {
                    problem = Problem(
                        .methodNotAllowed, detail: "\(request.uri.path) answers \(allowed.joined(separator: ", ")).",
                        headers: [.allow: allowed.joined(separator: ", ")])
                }
            }
            return try problem.response(from: request, context: context)
        }
    }

    /// The problem an arbitrary error is answered with.
    public static func problem(for error: any Error, logger: Logger) -> Problem {
        switch error {
        case let problem as Problem:
            return problem
        case let parserError as HTTPParserError:
            // The request's framing broke while its body was read (a malformed chunk, say).
            return Problem(
                .badRequest, title: "Malformed request",
                detail: "The request body is not valid HTTP/1.1 framing (\(parserError)).")
        case let httpError as HTTPError:
            var problem = Problem(httpError.status, detail: httpError.body ?? httpError.status.reasonPhrase)
            problem.headers = httpError.headers
            problem.headers[.contentType] = nil
            if httpError.status == .contentTooLarge {
                problem.detail = "The request body is larger than the server accepts."
            }
            return problem
        case let responseError as any HTTPResponseError:
            return Problem(responseError.status, detail: responseError.status.reasonPhrase)
        default:
            // The error's text may carry internals (paths, SQL); it is logged, never sent.
            logger.error("unhandled error", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            return Problem(.internalServerError, detail: "The server failed to handle the request.")
        }
    }
}
