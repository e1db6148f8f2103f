import Foundation
import HTTPTypes
import Hummingbird

/// One operation of an HTTP API, as its OpenAPI 3.1 document describes it.
public struct APIOperation: Sendable {
    /// The method.
    public var method: HTTPRequest.Method
    /// The route template, parameters in braces (`/api/notifications/{id}`).
    public var path: String
    /// What it does, in a line.
    public var summary: String
    /// The group it is listed under.
    public var tag: String
    /// The security schemes any one of which admits a caller (empty: anyone).
    public var security: [String]
    /// Its path, query and header parameters.
    public var parameters: [APIParameter]
    /// Its request body, if it takes one.
    public var body: APIBody?
    /// Every answer it can give.
    public var responses: [APIResponse]

    /// An operation with the given parts.
    public init(
        _ method: HTTPRequest.Method, _ path: String, summary: String, tag: String, security: [String] = [],
        parameters: [APIParameter] = [], body: APIBody? = nil, responses: [APIResponse]
    ) {
        (self.method, self.path, self.summary, self.tag, self.security) = (method, path, summary, tag, security)
        (self.parameters, self.body, self.responses) = (parameters, body, responses)
    }

    /// The operation's OpenAPI object.
    var document: JSONValue {
        var operation: [String: JSONValue] = [
            "operationId": .string(operationID), "summary": .string(summary), "tags": [.string(tag)],
            "responses": .object(
                Dictionary(responses.map { (String($0.status), $0.document) }, uniquingKeysWith: { $1 })),
        ]
        if !parameters.isEmpty { operation["parameters"] = .array(parameters.map(\.document)) }
        if let body { operation["requestBody"] = body.document }
        // `[]` says "no security", which an OpenAPI document's top level could otherwise lend it.
        operation["security"] = .array(security.map { .object([$0: []]) })
        return .object(operation)
    }

    /// A stable, unique id: the method and the path's words (`get_api_notifications_id_read`).
    public var operationID: String {
        let words = path.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map { $0.lowercased() }
        return ([method.rawValue.lowercased()] + words).joined(separator: "_")
    }
}

/// A parameter of an operation.
public struct APIParameter: Sendable {
    /// Where it is sent.
    public enum Location: String, Sendable {
        /// In the path (always required).
        case path
        /// In the query string.
        case query
        /// In a header.
        case header
    }

    /// Its name.
    public var name: String
    /// Where it is sent.
    public var location: Location
    /// What it means.
    public var description: String
    /// Whether a request must carry it.
    public var required: Bool
    /// Its JSON Schema.
    public var schema: JSONValue

    /// A parameter; a path parameter is always required.
    public init(
        _ name: String, in location: Location, _ description: String, required: Bool = false,
        schema: JSONValue = ["type": "string"]
    ) {
        (self.name, self.location, self.description, self.schema) = (name, location, description, schema)
        self.required = required || location == .path
    }

    var document: JSONValue {
        [
            "name": .string(name), "in": .string(location.rawValue), "description": .string(description),
            "required": .bool(required), "schema": schema,
        ]
    }
}

/// The body an operation takes.
public struct APIBody: Sendable {
    /// Its media type.
    public var contentType: String
    /// Its JSON Schema.
    public var schema: JSONValue
    /// Whether it must be sent.
    public var required: Bool

    /// A required body of `contentType` (JSON by default).
    public init(_ schema: JSONValue, contentType: String = "application/json", required: Bool = true) {
        (self.schema, self.contentType, self.required) = (schema, contentType, required)
    }

    var document: JSONValue {
        ["required": .bool(required), "content": .object([contentType: ["schema": schema]])]
    }
}

/// One answer of an operation.
public struct APIResponse: Sendable {
    /// Its status code.
    public var status: Int
    /// When it is given.
    public var description: String
    /// Its media type and schema, if it has a body.
    public var content: (type: String, schema: JSONValue)?
    /// Its headers by name (each a header object, or a `$ref`).
    public var headers: [String: JSONValue]

    /// An answer with `status`, a JSON body of `schema` when given, and `headers`.
    public init(
        _ status: Int, _ description: String, json schema: JSONValue? = nil, headers: [String: JSONValue] = [:]
    ) {
        self.init(status, description, content: schema.map { ("application/json", $0) }, headers: headers)
    }

    /// An answer with `status`, a body of `content` when given, and `headers`.
    public init(
        _ status: Int, _ description: String, content: (type: String, schema: JSONValue)?,
        headers: [String: JSONValue] = [:]
    ) {
        (self.status, self.description, self.content, self.headers) = (status, description, content, headers)
    }

    /// An RFC 9457 problem (`application/problem+json`) with `status`.
    public static func problem(_ status: Int, _ description: String, headers: [String: JSONValue] = [:]) -> Self {
        Self(
            status, description, content: ("application/problem+json", ["$ref": "#/components/schemas/Problem"]),
            headers: headers)
    }

    var document: JSONValue {
        var response: [String: JSONValue] = ["description": .string(description)]
        if let content { response["content"] = .object([content.type: ["schema": content.schema]]) }
        if !headers.isEmpty { response["headers"] = .object(headers) }
        return .object(response)
    }
}

/// An OpenAPI 3.1 document: the operations, the schemas they refer to, the security schemes.
public struct OpenAPIDocument: Sendable {
    /// The API's name.
    public var title: String
    /// Its version.
    public var version: String
    /// What it is, in Markdown.
    public var description: String
    /// Every operation.
    public var operations: [APIOperation]
    /// Shared schemas (`#/components/schemas/NAME`).
    public var schemas: [String: JSONValue]
    /// Shared response headers (`#/components/headers/NAME`).
    public var headers: [String: JSONValue]
    /// Security schemes by name.
    public var securitySchemes: [String: JSONValue]

    /// A document with the given parts.
    public init(
        title: String, version: String, description: String, operations: [APIOperation] = [],
        schemas: [String: JSONValue] = [:], headers: [String: JSONValue] = [:],
        securitySchemes: [String: JSONValue] = [:]
    ) {
        (self.title, self.version, self.description, self.operations) = (title, version, description, operations)
        (self.schemas, self.headers, self.securitySchemes) = (schemas, headers, securitySchemes)
    }

    /// The document as JSON.
    public var json: JSONValue {
        var paths: [String: [String: JSONValue]] = [:]
        for operation in operations {
            paths[operation.path, default: [:]][operation.method.rawValue.lowercased()] = operation.document
        }
        return [
            "openapi": "3.1.0",
            "info": ["title": .string(title), "version": .string(version), "description": .string(description)],
            "paths": .object(paths.mapValues { .object($0) }),
            "components": [
                "schemas": .object(schemas), "headers": .object(headers),
                "securitySchemes": .object(securitySchemes),
            ],
        ]
    }

    /// The document's bytes (keys sorted: the same document is the same bytes).
    public func encoded() throws -> [UInt8] { try JSONBody.encode(json) }

    /// The routes of `routes` the document does not describe, and the operations it describes that no route
    /// serves, each as `METHOD /path`. HEAD, which every GET answers, and catch-alls (`**`) are not compared.
    public func mismatches<Context>(_ routes: [Router<Context>.RouteDescription]) -> (
        undescribed: [String], unserved: [String]
    ) {
        func key(_ method: HTTPRequest.Method, _ path: String) -> String { "\(method.rawValue) \(path)" }
        let served = Set(
            routes.filter { $0.method != .head && !$0.path.description.contains("**") }.map {
                key($0.method, Self.template($0.path.description))
            })
        let described = Set(operations.map { key($0.method, $0.path) })
        return (served.subtracting(described).sorted(), described.subtracting(served).sorted())
    }

    /// A route's path as an OpenAPI template: `:id` and `{id}` both become `{id}`, and `/` the root.
    static func template(_ path: String) -> String {
        let segments = path.split(separator: "/").map { segment in
            segment.hasPrefix(":") ? "{\(segment.dropFirst())}" : String(segment)
        }
        return "/" + segments.joined(separator: "/")
    }
}
