import Configuration
import EnvoyBackend
import EnvoyPlugins
import EnvoyFramework
import Foundation
import Logging
import Synchronization
import Testing

@Suite("Configuration from the environment and .env")
struct ConfigurationTests {
    @Test("defaults are SPEC's")
    func defaults() throws {
        let configuration = try AppConfiguration(environment: [:])
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.databasePath == "./envoy.db")
        #expect(configuration.redis == nil)
        #expect(configuration.sender == EmailSender(address: "noreply@envoyou.com", name: "Envoyou"))
        #expect(configuration.paddleEnvironment == "sandbox")
        #expect(configuration.profileCacheTTL == .seconds(600))
        #expect(configuration.notificationsCacheTTL == .seconds(300))
        #expect(configuration.rateLimitPolicies == RateLimitPolicy.defaults)
    }

    @Test("every variable is read")
    func reads() throws {
        let configuration = try AppConfiguration(environment: [
            "HOST": "0.0.0.0", "PORT": "9000", "DATABASE_URL": "sqlite:///var/lib/envoy/app.db",
            "REDIS_URL": "rediss://default:s3cret@eu1.upstash.io:6379/2", "EMAIL_FROM": "hello@example.com",
            "EMAIL_FROM_NAME": "Example", "PADDLE_ENVIRONMENT": "production", "PADDLE_WEBHOOK_SECRET": "a, b",
            "PADDLE_PRICE_ID_PREMIUM": "pri_123", "TRUSTED_PROXIES": "10.0.0.0/8, ::1", "PROFILE_CACHE_TTL": "60",
            "NOTIFICATIONS_CACHE_TTL": "30", "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json",
        ])
        #expect(configuration.host == "0.0.0.0" && configuration.port == 9000)
        #expect(configuration.databasePath == "/var/lib/envoy/app.db")
        #expect(configuration.paddleWebhookSecrets == ["a", "b"])
        #expect(configuration.paddlePricePlans == ["pri_123": "premium"])
        #expect(configuration.trustedProxies.count == 2)
        #expect(configuration.profileCacheTTL == .seconds(60))
        #expect(configuration.logLevel == .debug && configuration.logFormat == "json")
    }

    @Test("a postgres:// DATABASE_URL selects PostgreSQL; the start-up summary shows it without the password")
    func postgres() throws {
        let configuration = try AppConfiguration(environment: [
            "DATABASE_URL": "postgresql://envoy:hunter2@db.internal:6543/app?sslmode=require",
            "JWT_SECRET": "a-shared-secret-of-at-least-thirty-two-bytes",
        ])
        #expect(configuration.postgres?.description == "postgres://envoy@db.internal:6543/app?sslmode=require")
        let summary = "\(configuration.summary)"
        #expect(summary.contains("postgres://envoy@db.internal:6543/app?sslmode=require"))
        #expect(!summary.contains("hunter2"))
    }

    @Test("a bad value names its variable, and never echoes a secret")
    func badValues() {
        let cases: [([String: String], String)] = [
            (["PORT": "eighty"], "PORT"), (["PORT": "70000"], "PORT"),
            (["REDIS_URL": "http://user:hunter2@host"], "REDIS_URL"),
            (["REDIS_URL": "redis://:hunter2@/0"], "REDIS_URL"),
            (["REDIS_URL": "redis://:hunter2@host/notanumber"], "REDIS_URL"),
            (["REDIS_URL": "redis://:hunter2%zz@host:6379"], "REDIS_URL"),
            (["REDIS_URL": "redis://us%2er:hunter2%@host:6379"], "REDIS_URL"),
            (["REDIS_URL": "unix:///tmp/redis.sock?password=hunter2%g1"], "REDIS_URL"),
            (["HTTP_HEADER_TIMEOUT": "0"], "HTTP_HEADER_TIMEOUT"),
            (["HTTP_IDLE_TIMEOUT": "soon"], "HTTP_IDLE_TIMEOUT"),
            (["TRUSTED_PROXY_HEADER": "x-real-ip"], "TRUSTED_PROXY_HEADER"),
            (["DATABASE_URL": "mysql://x"], "DATABASE_URL"), (["JWT_SECRET": "hunter2"], "JWT_SECRET"),
            (["DATABASE_URL": "postgres://u:hunter2@db/envoy?sslmode=sometimes"], "DATABASE_URL"),
            (["DATABASE_URL": "postgres://u:hunter2@/envoy"], "DATABASE_URL"),
            (["DATABASE_URL": "postgres://u:hunter2@db:5432/envoy"], "JWT_SECRET"),
            (["PADDLE_ENVIRONMENT": "staging"], "PADDLE_ENVIRONMENT"),
            (["TRUSTED_PROXIES": "10.0.0.0/99"], "TRUSTED_PROXIES"),
            (["PROFILE_CACHE_TTL": "-1"], "PROFILE_CACHE_TTL"), (["LOG_LEVEL": "loud"], "LOG_LEVEL"),
            (["LOG_FORMAT": "xml"], "LOG_FORMAT"), (["MAILGUN_API_KEY": "key-hunter2"], "MAILGUN_DOMAIN"),
            (["EMAIL_FROM": "nobody"], "EMAIL_FROM"),
            (
                [
                    "MAILGUN_API_KEY": "key-hunter2", "MAILGUN_DOMAIN": "d.example.com",
                    "MAILGUN_API_BASE_URL": "ftp://x",
                ],
                "MAILGUN_API_BASE_URL"
            ),
            (
                ["MAILGUN_API_KEY": "key-hunter2", "MAILGUN_DOMAIN": "d.example.com", "MAILGUN_TEST_MODE": "maybe"],
                "MAILGUN_TEST_MODE"
            ), (["RATE_LIMITS_FILE": "/nonexistent.json"], "RATE_LIMITS_FILE"),
        ]
        for (environment, variable) in cases {
            do {
                _ = try AppConfiguration(environment: environment)
                Issue.record("\(environment) was accepted")
            } catch {
                #expect(error.variable == variable, "\(environment)")
                #expect(!error.description.contains("hunter2"), "\(error.description)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    @Test("MAILGUN_* select the Mailgun mailer (EU base, test mode); the start-up summary never shows the key")
    func mailgun() throws {
        let configuration = try AppConfiguration(environment: [
            "MAILGUN_API_KEY": "key-hunter2", "MAILGUN_DOMAIN": "mg.example.com",
            "MAILGUN_API_BASE_URL": "https://api.eu.mailgun.net", "MAILGUN_TEST_MODE": "true",
        ])
        #expect(configuration.mailgun?.domain == "mg.example.com" && configuration.mailgun?.testMode == true)
        #expect(configuration.mailgun?.baseURL == "https://api.eu.mailgun.net")
        #expect(!"\(configuration.summary)".contains("hunter2"))
    }

    @Test("RATE_LIMITS_FILE replaces the policies and is validated")
    func policiesFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID()).json").path
        try #"[{"name":"burst","limit":2,"window":1,"key":"ip","match":{"method":"GET"}}]"#.write(
            toFile: path, atomically: true, encoding: .utf8)
        let configuration = try AppConfiguration(environment: ["RATE_LIMITS_FILE": path])
        #expect(configuration.rateLimitPolicies.map(\.name) == ["burst"])
        try #"[{"name":"x","limit":0,"window":1,"key":"ip","match":{}}]"#.write(
            toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try AppConfiguration(environment: ["RATE_LIMITS_FILE": path]) }
    }

    @Test("secrets are marked for the configuration reader: its access log shows every read, never a secret")
    func secretsMarked() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dotenv-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "JWT_SECRET=hunter2-from-the-dotenv-file-0123456789\nPADDLE_API_KEY=hunter2-paddle\n".write(
            to: directory.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        let environment = [
            "REDIS_URL": "redis://:hunter2@cache.internal:6379", "MAILGUN_API_KEY": "key-hunter2",
            "MAILGUN_DOMAIN": "mg.example.com", "PADDLE_WEBHOOK_SECRET": "hunter2-a,hunter2-b",
            "DATABASE_URL": "postgres://envoy:hunter2@db.internal/app", "PORT": "9000",
        ]
        let log = AccessLog()
        let configuration = try AppConfiguration(
            reader: AppConfiguration.reader(
                directory: directory.path, processEnvironment: environment, accessReporter: log))
        #expect(configuration.jwtSecret == "hunter2-from-the-dotenv-file-0123456789")
        #expect(configuration.paddleWebhookSecrets == ["hunter2-a", "hunter2-b"])
        let events = log.events.withLock { $0 }
        let read = Set(events.map { $0.metadata.key.components.joined(separator: ".") })
        #expect(read.isSuperset(of: AppConfiguration.secretVariables.union(["PORT", "MAILGUN_DOMAIN"])))
        let rendered = events.map(\.description).joined(separator: "\n")
        #expect(rendered.contains("9000"), "a setting that is not secret shows")
        #expect(!rendered.contains("hunter2"), "\(rendered)")
    }

    @Test(".env lines are read; the real environment wins")
    func dotEnv() throws {
        let parsed = try DotEnv.parse(
            """
            # comment
            export PORT=9001
            HOST = "0.0.0.0"
            EMAIL_FROM_NAME='Envoy Team'
            LOG_LEVEL=debug # trailing comment

            """)
        #expect(parsed == ["PORT": "9001", "HOST": "0.0.0.0", "EMAIL_FROM_NAME": "Envoy Team", "LOG_LEVEL": "debug"])
        #expect(throws: ConfigurationError.self) { try DotEnv.parse("just words") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dotenv-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "PORT=9001\nHOST=0.0.0.0\n".write(
            to: directory.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        let loaded = try AppConfiguration.load(directory: directory.path, processEnvironment: ["PORT": "9002"])
        #expect(loaded.port == 9002 && loaded.host == "0.0.0.0")
    }
}

/// The configuration reader's accesses, kept.
final class AccessLog: AccessReporter {
    let events = Mutex<[AccessEvent]>([])
    func report(_ event: AccessEvent) { events.withLock { $0.append(event) } }
}
