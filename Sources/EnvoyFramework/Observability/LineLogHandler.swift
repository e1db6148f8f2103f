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
        let timestamp = Self.timestamp.format(Date())
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 })
        var line: Data
        switch format {
        case .text:
            let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line = Data(
                "\(timestamp) \(event.level.rawValue) \(label):\(fields.isEmpty ? "" : " " + fields) \(event.message)"
                    .utf8)
        case .json:
            var object: [String: String] = [
                "ts": timestamp, "level": event.level.rawValue, "logger": label, "message": event.message.description,
            ]
            for (key, value) in merged { object[key] = "\(value)" }
            guard let encoded = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
                return
            }
            line = encoded
        }
        line.append(UInt8(ascii: "\n"))
        FileHandle.standardError.write(line)
    }
}
