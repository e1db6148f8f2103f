import EnvoyFramework
import Testing

@Suite("HTTP optional whitespace")
struct WhitespaceTests {
    @Test("spaces and tabs are trimmed at both ends, from text and from bytes; nothing else is")
    func trimming() {
        for (text, trimmed) in [
            (" \tBearer abc\t ", "Bearer abc"), ("abc", "abc"), ("", ""), (" \t ", ""), ("\na b\r", "\na b\r"),
            ("  é ", "é"),
        ] {
            #expect(text.trimmingSpacesAndTabs() == trimmed, "\(text.debugDescription)")
            #expect(text.dropFirst(0).trimmingSpacesAndTabs() == trimmed, "Substring \(text.debugDescription)")
            #expect(Array(Array(text.utf8)[...].trimmingSpacesAndTabs()) == Array(trimmed.utf8))
        }
    }
}
