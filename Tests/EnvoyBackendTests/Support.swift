import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import EnvoyTestSupport

/// A backend on a fresh temporary directory (database, outbox), embedded providers, low bcrypt cost.
struct TestStack {
    let directory: URL
    var configuration: AppConfiguration

    init(_ adjust: (inout AppConfiguration) throws -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("envoy-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = AppConfiguration()
        configuration.port = 0
        configuration.databasePath = directory.appendingPathComponent("envoy.db").path
        if SharedPostgres.backendTestsUsePostgres {
            configuration.postgres = try PostgresEndpoint(url: SharedPostgres.freshDatabase())
        }
        configuration.mailOutboxDirectory = directory.appendingPathComponent("mail-outbox").path
        configuration.emailTemplatesDirectory = Self.repositoryRoot.appendingPathComponent("templates/email").path
        configuration.jwtSecret = "test-secret-that-is-at-least-32-bytes-long"
        configuration.bcryptCost = 4
        try adjust(&configuration)
        self.configuration = configuration
    }

    /// `DATABASE_URL` for a process of its own in `directory`: a fresh PostgreSQL database, or a SQLite file there.
    static func databaseURL(in directory: URL) throws -> String {
        SharedPostgres.backendTestsUsePostgres
            ? try SharedPostgres.freshDatabase() : "sqlite://\(directory.path)/envoy.db"
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    func backend(providers: Backend.Providers = .init()) async throws -> Backend {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["ENVOY_TEST_LOG"] == nil ? .critical : .debug
        return try await Backend.make(configuration: configuration, providers: providers, logger: logger)
    }

    /// The `.eml` files written so far.
    func outbox() -> [String] {
        let dir = URL(fileURLWithPath: configuration.mailOutboxDirectory)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return files.filter { $0.hasSuffix(".eml") }.sorted().compactMap {
            try? String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)
        }
    }
}

extension TestClientProtocol {
    /// Sends a JSON body (or raw text) with an optional bearer token.
    @discardableResult
    func send(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil, token: String? = nil) async throws
        -> TestResponse
    {
        var headers: HTTPFields = [:]
        if json != nil { headers[.contentType] = "application/json" }
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// Registers and logs in a user; returns the access token.
    func signUp(
        email: String = "ann-\(UUID().uuidString.prefix(8))@example.com", password: String = "correct horse battery"
    ) async throws -> String {
        let registered = try await send(
            .post, "/v1/auth/register", json: #"{"email":"\#(email)","password":"\#(password)","name":"Ann"}"#)
        #expect(registered.status == .created)
        let login = try await send(.post, "/v1/auth/login", json: #"{"email":"\#(email)","password":"\#(password)"}"#)
        #expect(login.status == .ok)
        return try login.json()["access_token"] as? String ?? ""
    }
}

extension TestResponse {
    /// The body as a JSON object.
    func json() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] ?? [:]
    }

    /// The body as text.
    var text: String { String(buffer: body) }
}
