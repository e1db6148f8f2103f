import Foundation
import Logging

/// A `LogHandler` writing one line per event to standard error: text (`LOG_FORMAT=text`) or one JSON object
/// (`LOG_FORMAT=json`). Metadata is formatted only when a line is written, so setting per-request metadata on a
/// logger costs nothing at levels that write nothing.
public struct LineLogHandler: LogHandler {
    /// How lines look.
    public enum Format: Sendable {
        /// `2026-12-01T15:00:00.123Z info envoy: key=value message`.
        case text
        /// `{"level":"info","logger":"envoy","message":"…","ts":"…",…}`.
        case json
    }

    /// Metadata attached to every line.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level written.
    public var logLevel: Logger.Level = .info
    private let label: String
    private let format: Format

    /// A handler for the logger named `label`.
    public init(label: String, format: Format) {
        self.label = label
        self.format = format
    }

    /// One metadata value.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// RFC 3339 in UTC, to the millisecond: `2026-12-08T00:10:16.784Z`.
    static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    /// Writes the line.
    public func log(event: LogEvent) {
        var line = Self.line(
            label: label, level: event.level, message: "\(event.message)",
            metadata: metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }), format: format,
            timestamp: Self.timestamp.format(Date()))
        line.append(UInt8(ascii: "\n"))
        FileHandle.standardError.write(line)
    }

    /// One line, without its newline: text, or a JSON object whose numbers and booleans are JSON numbers and
    /// booleans, and whose lists and dictionaries are arrays and objects.
    static func line(
        label: String, level: Logger.Level, message: String, metadata: Logger.Metadata, format: Format,
        timestamp: String
    ) -> Data {
        switch format {
        case .text:
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return Data("\(timestamp) \(level.rawValue) \(label):\(fields.isEmpty ? "" : " " + fields) \(message)".utf8)
        case .json:
            var object: [String: Any] = ["ts": timestamp, "level": level.rawValue, "logger": label, "message": message]
            for (key, value) in metadata { object[key] = json(value) }
            return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        }
    }

    /// A metadata value as JSON: a number or a boolean given as one stays one.
    static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): return text
        case .stringConvertible(let convertible):
            switch convertible {
            case let flag as Bool: return flag
            case let number as Int: return number
            case let number as Int64: return number
            case let number as UInt64: return number
            case let number as Double where number.isFinite: return number
            default: return convertible.description
            }
        case .array(let values): return values.map(json)
        case .dictionary(let values): return values.mapValues(json)
        }
    }
}
