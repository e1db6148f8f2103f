import Foundation
import HTTPTypes
import Logging

/// Reads a `.env` file: `KEY=value` lines, `#` comments, optional `export `, single or double quotes. (The
/// configuration reader's own `.env` parser keeps quotes and skips a malformed line in silence.)
public enum DotEnv {
    /// The variables in `contents`; a malformed line is an error naming its line number.
    public static func parse(_ contents: String) throws(ConfigurationError) -> [String: String] {
        var values: [String: String] = [:]
        for (index, rawLine) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)) }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(variable: ".env", problem: "line \(index + 1) is not KEY=value")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw ConfigurationError(variable: ".env", problem: "line \(index + 1) has an invalid name")
            }
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if let quote = value.first, quote == "\"" || quote == "'", value.count >= 2, value.last == quote {
                value = String(value.dropFirst().dropLast())
                if quote == "\"" { value = value.replacingOccurrences(of: "\\n", with: "\n") }
            } else if let comment = value.range(of: " #") {
                value = value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces)
            }
            values[key] = value
        }
        return values
    }
}

/// A configuration value that stops start-up; the message names the variable and never its secret value.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// The variable at fault.
    public var variable: String
    /// What is wrong with it.
    public var problem: String

    /// An error about `variable`.
    public init(variable: String, problem: String) {
        self.variable = variable
        self.problem = problem
    }

    /// `VARIABLE: problem`.
    public var description: String { "\(variable): \(problem)" }
}
