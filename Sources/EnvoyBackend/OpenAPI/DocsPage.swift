import EnvoyFramework
import Foundation
import HTTPTypes

/// `GET /docs`: the OpenAPI document rendered on the server as one page — its own style, no script, nothing
/// fetched from anywhere.
enum DocsPage {
    /// The page for `document`.
    static func render(_ document: OpenAPIDocument) -> String {
        let tags = document.operations.reduce(into: [String]()) { if !$0.contains($1.tag) { $0.append($1.tag) } }
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.escape(document.title)) API \(HTML.escape(document.version))</title>
            <style>\(style)</style></head><body>
            <h1>\(HTML.escape(document.title)) API <small>\(HTML.escape(document.version)) · OpenAPI 3.1 · \
            <a href="/openapi.json">openapi.json</a></small></h1>
            <p>\(HTML.escape(document.description))</p>
            <nav>\(tags.map { "<a href=\"#tag-\(HTML.escape($0))\">\(HTML.escape($0))</a>" }.joined(separator: " · ")) \
            · <a href="#schemas">schemas</a></nav>

            """
        for tag in tags {
            html += "<h2 id=\"tag-\(HTML.escape(tag))\">\(HTML.escape(tag))</h2>\n"
            for operation in document.operations where operation.tag == tag { html += section(operation) }
        }
        html += "<h2 id=\"schemas\">Schemas</h2>\n"
        for (name, schema) in document.schemas.sorted(by: { $0.key < $1.key }) {
            html += "<h3 id=\"schema-\(HTML.escape(name))\">\(HTML.escape(name))</h3>\(json(schema))\n"
        }
        return html + "</body></html>\n"
    }

    static func section(_ operation: APIOperation) -> String {
        let method = operation.method.rawValue
        var html = """
            <section class="operation" id="\(HTML.escape(operation.operationID))">
            <h3><span class="method \(method.lowercased())">\(method)</span> <code>\(HTML.escape(operation.path))</code></h3>
            <p>\(HTML.escape(operation.summary))</p>
            <p class="security">\(operation.security.isEmpty ? "No credentials." : "Credentials: " + operation.security.map { "<code>\(HTML.escape($0))</code>" }.joined(separator: " or "))</p>

            """
        if !operation.parameters.isEmpty {
            html += "<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th></th></tr>\n"
            for parameter in operation.parameters {
                html +=
                    "<tr><td><code>\(HTML.escape(parameter.name))</code></td><td>\(parameter.location.rawValue)</td>"
                html += "<td>\(parameter.required ? "yes" : "no")</td><td>\(inline(parameter.schema))</td>"
                html += "<td>\(HTML.escape(parameter.description))</td></tr>\n"
            }
            html += "</table>\n"
        }
        if let body = operation.body {
            html += "<p>Body (<code>\(HTML.escape(body.contentType))</code>): \(inline(body.schema))</p>\n"
        }
        html += "<table><tr><th>status</th><th>when</th><th>body</th><th>headers</th></tr>\n"
        for response in operation.responses.sorted(by: { $0.status < $1.status }) {
            let content = response.content.map { "<code>\(HTML.escape($0.type))</code> \(inline($0.schema))" } ?? "—"
            let headers = response.headers.keys.sorted().map { "<code>\(HTML.escape($0))</code>" }
            html += "<tr><td>\(response.status)</td><td>\(HTML.escape(response.description))</td><td>\(content)</td>"
            html += "<td>\(headers.joined(separator: " "))</td></tr>\n"
        }
        return html + "</table></section>\n"
    }

    /// A schema in a line: a reference as a link to it, anything else as compact JSON.
    static func inline(_ schema: JSONValue) -> String {
        if case .object(let members) = schema, case .string(let reference)? = members["$ref"] {
            let name = String(reference.split(separator: "/").last ?? "")
            return "<a href=\"#schema-\(HTML.escape(name))\">\(HTML.escape(name))</a>"
        }
        if case .object(let members) = schema, case .string("array")? = members["type"], let items = members["items"] {
            return "list of " + inline(items)
        }
        let text = (try? JSONBody.encode(schema)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return "<code>\(HTML.escape(text))</code>"
    }

    static func json(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let text = (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return "<pre>\(HTML.escape(text))</pre>"
    }

    static let style = """
        body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #1d2330; }
        h1 small { font-weight: normal; font-size: .6em; color: #5a6270; }
        h2 { border-bottom: 1px solid #d6dae2; padding-bottom: .2em; margin-top: 2em; }
        section.operation { border: 1px solid #e3e6ec; border-radius: 6px; padding: .2em 1em .8em; margin: 1em 0; }
        .method { display: inline-block; min-width: 4.2em; text-align: center; border-radius: 4px; color: #fff;
          font-size: .8em; padding: .15em .4em; background: #5a6270; }
        .get { background: #2b6cb0; } .post { background: #2f855a; } .put { background: #b7791f; }
        .delete { background: #c53030; }
        table { border-collapse: collapse; width: 100%; margin: .5em 0; font-size: .92em; }
        th, td { text-align: left; border-bottom: 1px solid #eef0f4; padding: .3em .5em; vertical-align: top; }
        code { background: #f3f5f8; padding: 0 .2em; border-radius: 3px; word-break: break-word; }
        pre { background: #f7f8fa; padding: .8em; overflow-x: auto; border: 1px solid #e3e6ec; }
        .security { color: #5a6270; font-size: .9em; }
        """
}
