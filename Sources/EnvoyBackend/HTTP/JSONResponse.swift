import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Builds JSON responses with stable key order.
enum JSONResponse {
    static func make(
        _ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:],
        keys: JSONBody.KeyStyle = .asDeclared
    ) throws -> Response {
        body(try JSONBody.encode(value, keys: keys)[...], status: status, headers: headers)
    }

    /// A response whose body is JSON already encoded (a cached entry's bytes, served as stored).
    static func body(
        _ json: ArraySlice<UInt8>, status: HTTPResponse.Status = .ok, headers: consuming HTTPFields = [:]
    ) -> Response {
        // Taken, not copied (a copy's first change copied every field).
        headers.append(HTTPField(name: .contentType, value: "application/json"))
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }

    /// Cached JSON carrying `X-Cache`.
    static func cached(json: ArraySlice<UInt8>, _ status: CacheStatus) -> Response {
        body(json, headers: [.xCache: status.rawValue])
    }
}

extension HTTPField.Name {
    /// `X-Cache`: HIT, MISS or BYPASS.
    static let xCache = Self("X-Cache")!
}

/// Checks shared by the routes' request bodies.
enum Validate {
    /// Trimmed text of at most `maxLength` characters, non-empty unless `allowEmpty`.
    static func text(_ value: String, field: String, maxLength: Int, allowEmpty: Bool = false) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty && !allowEmpty { throw Problem.invalidField(field, "must not be empty") }
        if trimmed.count > maxLength { throw Problem.invalidField(field, "must be at most \(maxLength) characters") }
        if trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" }) {
            throw Problem.invalidField(field, "must not contain control characters")
        }
        return trimmed
    }
}
