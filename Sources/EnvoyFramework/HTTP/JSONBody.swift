import Foundation
import Hummingbird

/// Reads a request's JSON body with the errors a client can act on: 413, 400 or 422 naming the field.
public struct JSONBody: Sendable {
    /// The largest body accepted, in bytes.
    public var limit: Int

    /// A reader accepting bodies up to `limit` bytes (1 MiB by default).
    public init(limit: Int = 1 << 20) {
        self.limit = limit
    }

    /// Decodes the body as `T`, mapping each failure to the problem a client expects.
    public func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer = try await bytes(of: request)
        guard buffer.readableBytes > 0 else {
            throw Problem.malformedJSON("The request body is empty; a JSON object is expected.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw Self.problem(for: error)
        }
    }

    /// How a JSON object's keys are written.
    public enum KeyStyle: Sendable {
        /// As the type's coding keys name them (the API's own bodies spell theirs).
        case asDeclared
        /// In snake_case, dates as Unix seconds: the admin API and `envoy queues --json`.
        case snakeCase
    }

    /// The JSON Envoy writes for `value` (sorted keys, `/` unescaped), shared by responses and cached entries so a
    /// cached body can be served byte for byte.
    public static func encode(_ value: some Encodable, keys: KeyStyle = .asDeclared) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if keys == .snakeCase {
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.dateEncodingStrategy = .secondsSince1970
        }
        return Array(try encoder.encode(value))
    }

    /// The body's bytes as sent (for signature checks); 413 when it is over the limit, 400 when its framing breaks.
    public func bytes(of request: Request) async throws -> ByteBuffer {
        var request = request
        do {
            return try await request.collectBody(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw Problem(.contentTooLarge, detail: "The request body is larger than \(limit) bytes.")
        }
    }

    static func problem(for error: DecodingError) -> Problem {
        switch error {
        case .keyNotFound(let key, let context):
            return .invalidField(path(context.codingPath + [key]), "is required")
        case .valueNotFound(_, let context):
            return .invalidField(path(context.codingPath), "must not be null")
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return .malformedJSON("The request body must be a JSON object.")
        case .typeMismatch(let type, let context):
            return .invalidField(path(context.codingPath), "must be \(describe(type))")
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            return .invalidField(path(context.codingPath), context.debugDescription)
        case .dataCorrupted:
            return .malformedJSON("The request body is not valid JSON.")
        @unknown default:
            return .malformedJSON("The request body could not be read.")
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Bool.Type: "a boolean"
        case is Double.Type: "a number"
        default: "of type \(type)"
        }
    }
}
