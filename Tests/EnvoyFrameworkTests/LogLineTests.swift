import Foundation
import Logging
import Testing

@testable import EnvoyFramework

@Suite("Log lines: RFC 3339 UTC timestamps; JSON lines keep numbers, booleans, lists and objects as JSON")
struct LogLineTests {
    @Test("a JSON line: numbers and booleans as JSON values, strings as strings, nested values as JSON")
    func jsonValues() throws {
        let metadata: Logger.Metadata = [
            "task.attempt": .stringConvertible(3), "retry.in_seconds": .stringConvertible(1.5),
            "claiming": .stringConvertible(true), "user.id": "42", "queues": .array(["email", "default"]),
            "limits": .dictionary(["login": .stringConvertible(5)]),
        ]
        let line = LineLogHandler.line(
            label: "envoy", level: .warning, message: "task failed", metadata: metadata, format: .json,
            timestamp: LineLogHandler.timestamp.format(Date(timeIntervalSince1970: 1_800_000_000.25)))
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["ts"] as? String == "2027-01-15T08:00:00.250Z")
        #expect(object["task.attempt"] as? Int == 3 && object["retry.in_seconds"] as? Double == 1.5)
        #expect(object["claiming"] as? Bool == true && object["user.id"] as? String == "42")
        #expect(object["queues"] as? [String] == ["email", "default"])
        #expect((object["limits"] as? [String: Any])?["login"] as? Int == 5)
        #expect(object["level"] as? String == "warning" && object["message"] as? String == "task failed")
        // JSON true, not the string "true"; 3, not "3".
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.contains(#""claiming":true"#) && text.contains(#""task.attempt":3"#))
    }

    @Test("a text line starts with the timestamp, then level, logger, sorted fields and the message")
    func textLine() {
        let line = LineLogHandler.line(
            label: "envoy", level: .info, message: "hello", metadata: ["b": "2", "a": .stringConvertible(1)],
            format: .text, timestamp: "2027-01-15T08:00:00.250Z")
        #expect(String(decoding: line, as: UTF8.self) == "2027-01-15T08:00:00.250Z info envoy: a=1 b=2 hello")
    }
}
