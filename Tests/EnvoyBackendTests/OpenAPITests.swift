import EnvoyFramework
import EnvoyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import EnvoyBackend

/// `/openapi.json` and `/docs` say what the server serves: every route, and nothing it does not serve.
@Suite("The OpenAPI document: every route described, every description served, references that resolve")
struct OpenAPITests {
    static let adminToken = "an-operators-token-of-at-least-32-bytes!"

    @Test("every registered route is described and every described operation is served, console included")
    func routesMatchTheDocument() async throws {
        for admin in [true, false] {
            let backend = try await TestStack { if admin { $0.adminToken = Self.adminToken } }.backend()
            let (undescribed, unserved) = backend.apiDocument.mismatches(backend.router().routes)
            #expect(undescribed.isEmpty, "routes the document lacks: \(undescribed)")
            #expect(unserved.isEmpty, "operations no route serves: \(unserved)")
            let paths = backend.apiDocument.operations.map(\.path)
            #expect(paths.contains("/admin/api/dead/{id}/retry") == admin)
            #expect(paths.contains("/v1/auth/login") && paths.contains("/openapi.json"))
        }
    }

    @Test("an application route is reported until it is described, then listed with the limiter's answers")
    func applicationRoutes() async throws {
        var backend = try await TestStack().backend()
        backend.addRoutes { routes in routes.get("/v1/hello/{name}") { _, _ in "hi" } }
        #expect(backend.apiDocument.mismatches(backend.router().routes).undescribed == ["GET /v1/hello/{name}"])
        backend.describe([
            APIOperation(
                .get, "/v1/hello/{name}", summary: "Greets.", tag: "hello", security: ["bearer"],
                parameters: [APIParameter("name", in: .path, "Whom.")],
                responses: [APIResponse(200, "A greeting.", content: ("text/plain", ["type": "string"]))])
        ])
        #expect(backend.apiDocument.mismatches(backend.router().routes) == ([], []))
        let hello = try #require(backend.apiDocument.operations.first { $0.path == "/v1/hello/{name}" })
        #expect(hello.responses.map(\.status) == [200, 429])
        #expect(
            hello.responses[0].headers["X-RateLimit-Remaining"] != nil
                && hello.responses[0].headers["X-Request-Id"] != nil)
    }

    @Test("GET /openapi.json: OpenAPI 3.1, an id per operation, every $ref resolves; /docs shows each, fetches nothing")
    func servedDocument() async throws {
        let backend = try await TestStack { $0.adminToken = Self.adminToken }.backend()
        try await backend.application().test(.router) { client in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(response.status == .ok && response.headers[.contentType] == "application/json")
            #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil)
            let document = try #require(
                try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            var ids: [String] = []
            for (path, operations) in paths {
                for (method, operation) in operations {
                    let operation = try #require(operation as? [String: Any])
                    ids.append(try #require(operation["operationId"] as? String))
                    let responses = try #require(operation["responses"] as? [String: Any], "\(method) \(path)")
                    #expect(!responses.isEmpty, "\(method) \(path)")
                    let templated = path.split(separator: "/").filter { $0.hasPrefix("{") }.map {
                        $0.dropFirst().dropLast()
                    }
                    let declared = (operation["parameters"] as? [[String: Any]] ?? []).filter {
                        $0["in"] as? String == "path"
                    }
                    #expect(
                        Set(templated.map(String.init)) == Set(declared.compactMap { $0["name"] as? String }), "\(path)"
                    )
                }
            }
            #expect(Set(ids).count == ids.count, "operation ids are unique")
            for reference in Self.references(in: document) {
                #expect(Self.resolve(reference, in: document) != nil, "\(reference) resolves")
            }

            let page = try await client.execute(uri: "/docs", method: .get)
            #expect(page.status == .ok && page.headers[.contentType]?.hasPrefix("text/html") == true)
            let html = String(buffer: page.body)
            for id in ids { #expect(html.contains("id=\"\(id)\""), "\(id) on the page") }
            #expect(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"))
        }
    }

    static func references(in value: Any) -> [String] {
        switch value {
        case let object as [String: Any]:
            return (object["$ref"] as? String).map { [$0] } ?? object.values.flatMap { references(in: $0) }
        case let array as [Any]: return array.flatMap { references(in: $0) }
        default: return []
        }
    }

    static func resolve(_ reference: String, in document: [String: Any]) -> Any? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: Any? = document
        for part in reference.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(part)] }
        return node
    }
}
