import Foundation
import Mustache
import NIOPosix

/// Mustache email templates: `NAME.text.mustache` (required), `NAME.html.mustache` and `NAME.subject.mustache`
/// (optional). Text parts and subjects use `{{{triple}}}` braces; HTML parts `{{double}}` (escaped).
/// A variable used outside any `{{#section}}` is required: sending without it is an error, not a blank.
public struct EmailTemplates: Sendable {
    private let library: MustacheLibrary
    private let required: [String: Set<String>]

    /// Templates from source texts keyed `NAME.text`, `NAME.html`, `NAME.subject` (tests, plugins).
    public init(sources: [String: String]) throws {
        var templates: [String: MustacheTemplate] = [:]
        var required: [String: Set<String>] = [:]
        for (key, text) in sources {
            templates[key] = try MustacheTemplate(string: text)
            let name = key.split(separator: ".").dropLast().joined(separator: ".")
            required[name, default: []].formUnion(Self.topLevelVariables(text))
        }
        self.library = MustacheLibrary(templates: templates)
        self.required = required
    }

    /// The templates built into the binary (`templates/email/` of the repository), so that `envoy` runs anywhere.
    public static func builtIn() throws -> EmailTemplates {
        try EmailTemplates(sources: builtInSources)
    }

    /// Loads every `.mustache` file under `directory` (read off the concurrency threads); a missing or unreadable
    /// directory, one without templates, or a template that does not parse is an `EmailTemplateError`.
    public static func load(directory: String) async throws -> EmailTemplates {
        try await NIOThreadPool.singleton.runIfActive {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue
            else { throw EmailTemplateError.missingDirectory(directory) }
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
                throw EmailTemplateError.unreadable(directory)
            }
            var sources: [String: String] = [:]
            for file in files where file.hasSuffix(".mustache") {
                guard let text = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8) else {
                    throw EmailTemplateError.unreadable(directory + "/" + file)
                }
                sources[String(file.dropLast(".mustache".count))] = text
            }
            guard !sources.isEmpty else { throw EmailTemplateError.empty(directory) }
            do {
                return try EmailTemplates(sources: sources)
            } catch {
                throw EmailTemplateError.invalid(directory, "\(error)")
            }
        }
    }

    /// Renders template `name` with `data`; a missing template or required variable is an `InvalidEmail`.
    public func render(_ name: String, data: [String: String]) throws(InvalidEmail) -> RenderedEmail {
        guard let required = required[name], let text = library.render(data, withTemplate: "\(name).text") else {
            throw InvalidEmail("no email template named \(name) (expected \(name).text.mustache)")
        }
        let missing = required.subtracting(data.keys).sorted()
        guard missing.isEmpty else {
            throw InvalidEmail("template \(name) needs \(missing.joined(separator: ", ")), which the data lacks")
        }
        let subject = library.render(data, withTemplate: "\(name).subject")?.trimmingCharacters(
            in: .whitespacesAndNewlines)
        return RenderedEmail(subject: subject, text: text, html: library.render(data, withTemplate: "\(name).html"))
    }

    /// Names of the variables a template uses outside sections (`{{x}}`, `{{{x}}}`, `{{&x}}`).
    static func topLevelVariables(_ source: String) -> Set<String> {
        var names: Set<String> = []
        var depth = 0
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            let triple = rest[open.upperBound...].hasPrefix("{")
            let tagStart = triple ? rest.index(after: open.upperBound) : open.upperBound
            guard let close = rest[tagStart...].range(of: triple ? "}}}" : "}}") else { break }
            let tag = rest[tagStart..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            rest = rest[close.upperBound...]
            guard let sigil = tag.first else { continue }
            switch sigil {
            case "#", "^": depth += 1
            case "/": depth = max(0, depth - 1)
            case "!", ">", "=": continue
            case "&":
                if depth == 0 { names.insert(tag.dropFirst().trimmingCharacters(in: .whitespaces)) }
            default:
                if depth == 0 && tag != "." { names.insert(tag) }
            }
        }
        return names
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

/// An email that cannot be sent as asked (bad address, unknown template, missing variable): refused when it is
/// queued, and a permanent failure if it is found only when sent.
public struct InvalidEmail: PermanentError, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong, in one line.
    public var description: String

    /// An error saying `description`.
    public init(_ description: String) {
        self.description = description
    }
}

/// Why templates could not be loaded: one line naming the directory or file. A struct, so that a new reason
/// breaks no caller.
public struct EmailTemplateError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The line.
    public let description: String

    /// The templates directory does not exist (or is not a directory).
    public static func missingDirectory(_ path: String) -> EmailTemplateError {
        EmailTemplateError(description: "no email templates directory at \(path)")
    }
    /// The directory or one of its templates cannot be read.
    public static func unreadable(_ path: String) -> EmailTemplateError {
        EmailTemplateError(description: "cannot read \(path)")
    }
    /// The directory holds no `.mustache` file.
    public static func empty(_ path: String) -> EmailTemplateError {
        EmailTemplateError(description: "no .mustache templates in \(path)")
    }
    /// A template does not parse.
    public static func invalid(_ path: String, _ why: String) -> EmailTemplateError {
        EmailTemplateError(description: "a template in \(path) does not parse: \(why)")
    }
}
