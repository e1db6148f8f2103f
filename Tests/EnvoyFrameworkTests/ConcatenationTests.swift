import EnvoyFramework
import Testing

@Suite("String(concatenating:)")
struct ConcatenationTests {
    @Test("parts joined in order: empty ones, slices, multi-byte text, short (small) and long results")
    func concatenating() {
        let long = String(repeating: "k", count: 200)
        let text = "cache:user-1:rest"
        #expect(String(concatenating: "{", "envoy"[...], ":rl}:", "", "é😀"[...]) == "{envoy:rl}:é😀")
        #expect(String(concatenating: text.dropFirst(6).prefix(6), "/", long[...]) == "user-1/" + long)
        #expect(String(concatenating: "", "") == "")
        #expect(String(concatenating: "a") == "a")
    }
}
