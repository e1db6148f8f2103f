import Foundation
import Mustache
import NIOPosix

/// Mustache email templates from a directory: `NAME.text.mustache` (required), `NAME.html.mustache`
/// and `NAME.subject.mustache` (optional). Text parts use `{{{triple}}}` braces; HTML parts `{{double}}` (escaped).
public struct EmailTemplates: Sendable {
    private let library: MustacheLibrary

    /// Templates registered in code (tests, plugins).
    public init(library: MustacheLibrary) {
        self.library = library
    }

    /// Loads every `.mustache` file under `directory` (read off the concurrency threads).
    public static func load(directory: String) async throws -> EmailTemplates {
        guard FileManager.default.fileExists(atPath: directory) else {
            throw EmailTemplateError.missingDirectory(directory)
        }
        let templates = try await NIOThreadPool.singleton.runIfActive {
            var templates: [String: MustacheTemplate] = [:]
            let files = try FileManager.default.contentsOfDirectory(atPath: directory)
            for file in files where file.hasSuffix(".mustache") {
                let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
                templates[String(file.dropLast(".mustache".count))] = try MustacheTemplate(string: text)
            }
            return templates
        }
        return EmailTemplates(library: MustacheLibrary(templates: templates))
    }

    /// Renders template `name` with `data`; a missing template is a permanent task failure.
    public func render(_ name: String, data: [String: String]) throws(TaskFailure) -> RenderedEmail {
        guard let text = library.render(data, withTemplate: "\(name).text") else {
            throw .permanent("no email template named \(name) (expected \(name).text.mustache)")
        }
        let subject = library.render(data, withTemplate: "\(name).subject")?.trimmingCharacters(
            in: .whitespacesAndNewlines)
        return RenderedEmail(subject: subject, text: text, html: library.render(data, withTemplate: "\(name).html"))
    }
}

/// A template rendered into the parts of a message.
public struct RenderedEmail: Sendable, Equatable {
    /// The subject, if the template has one.
    public var subject: String?
    /// The plain-text body.
    public var text: String
    /// The HTML body, if the template has one.
    public var html: String?
}

/// Template loading failures.
public enum EmailTemplateError: Error, CustomStringConvertible {
    /// The templates directory does not exist.
    case missingDirectory(String)

    /// One line naming the directory.
    public var description: String {
        switch self {
        case .missingDirectory(let path): "email templates directory not found: \(path)"
        }
    }
}
