import EnvoyFramework
import Testing

@Suite("Email addresses: one normal form per mailbox")
struct EmailAddressTests {
    @Test("IDN domains take their xn-- form (RFC 3492's own examples among them)")
    func punycode() {
        #expect(EmailAddress.normalized("a@bücher.de") == "a@xn--bcher-kva.de")
        #expect(EmailAddress.normalized("a@他们为什么不说中文.cn") == "a@xn--ihqwcrb4cv8a8dqg056pqjye.cn")
        #expect(
            EmailAddress.normalized("a@почемужеонинеговорятпорусски.ru") == "a@xn--b1abfaaepdrnnbgefbadotcwatmq2g4l.ru")
        // A label over 63 bytes once encoded.
        #expect(EmailAddress.normalized("a@" + String(repeating: "ü", count: 70) + ".de") == nil)
        #expect(EmailAddress.normalized("a@例え.テスト") == "a@xn--r8jz45g.xn--zckzah")
        #expect(EmailAddress.normalized("a@ÄÖÜ.de") == "a@xn--4ca0bs.de")
    }

    @Test("NFC and case folding; control, format and private-use characters refused")
    func forms() {
        #expect(EmailAddress.normalized("Zoe\u{308}@X.IO") == "zo\u{EB}@x.io")
        #expect(EmailAddress.normalized("Straße@x.io") == "strasse@x.io")
        #expect(EmailAddress.normalized(" Ann@Example.COM ") == "ann@example.com")
        for hostile in [
            "a\u{200B}@x.io", "a\u{200D}@x.io", "a@x\u{202E}.io", "a\u{FEFF}@x.io", "a\u{E000}@x.io", "a\u{0}@x.io",
        ] {
            #expect(EmailAddress.normalized(hostile) == nil, "\(hostile.unicodeScalars.map(\.value))")
        }
        #expect(EmailAddress.normalized("not-an-address") == nil)
    }
}
