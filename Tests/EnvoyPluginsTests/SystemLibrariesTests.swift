import EnvoyPlugins
import Testing

@Suite("The C libraries the plugins build on are linked and usable")
struct SystemLibrariesTests {
    @Test("hiredis is linked and its reader parses RESP (and refuses garbage)")
    func hiredis() {
        #expect(SystemLibraries.hiredisVersion.split(separator: ".").count == 3)
        #expect(SystemLibraries.parseRESPInteger(Array(":1234\r\n".utf8)) == 1234)
        #expect(SystemLibraries.parseRESPInteger(Array("+OK\r\n".utf8)) == nil)
        #expect(SystemLibraries.parseRESPInteger(Array("!!garbage".utf8)) == nil)
        #expect(SystemLibraries.parseRESPInteger([]) == nil)
    }

    @Test("libcurl is linked, with TLS")
    func curl() {
        let version = SystemLibraries.curlVersion
        #expect(version.first?.isNumber == true)
        #expect(version.contains("OpenSSL"))
    }
}
