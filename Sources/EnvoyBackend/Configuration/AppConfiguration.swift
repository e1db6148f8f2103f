import Configuration
import EnvoyFramework
import EnvoyPlugins
import Foundation
import HTTPTypes
import Logging

/// Everything `envoy` reads from its environment (SPEC "Configuration"), validated once at start-up.
public struct AppConfiguration: Sendable {
    /// Listen address.
    public var host = "127.0.0.1"
    /// Listen port.
    public var port = 8080
    /// Where Redis is (`REDIS_URL`, with `REDIS_TLS_CA_FILE`), if it is configured.
    public var redis: RedisEndpoint?
    /// Prefix of every Redis key (`REDIS_KEY_PREFIX`).
    public var redisKeyPrefix = "envoy"
    /// Deadline of each Redis call (`REDIS_TIMEOUT_MS`).
    public var redisTimeout: Duration = .milliseconds(500)
    /// The SQLite database file (also where a generated JWT secret is kept).
    public var databasePath = "./envoy.db"
    /// `DATABASE_URL` when it names PostgreSQL; nil: the SQLite file at `databasePath`.
    public var postgres: PostgresEndpoint?
    /// The HS256 key for access tokens; nil: generated once and kept beside the database.
    public var jwtSecret: String?
    /// How long an access token is valid.
    public var accessTokenLifetime: Duration = .seconds(3600)
    /// Mailgun account and region; nil: mail goes to `mailOutboxDirectory`.
    public var mailgun: MailgunMailer.Configuration?
    /// Where the file mailer writes `.eml` files.
    public var mailOutboxDirectory = "./mail-outbox"
    /// Where the email templates live (`EMAIL_TEMPLATES_DIR`); nil: the ones built into the binary.
    public var emailTemplatesDirectory: String?
    /// The sender of every email.
    public var sender = EmailSender(address: "noreply@envoyou.com", name: "Envoyou")
    /// The Paddle API key.
    public var paddleAPIKey: String?
    /// `sandbox` or `production`.
    public var paddleEnvironment = "sandbox"
    /// Overrides the API base the environment selects (a mock).
    public var paddleAPIBaseURL: String?
    /// Webhook secrets (several during rotation); empty: the webhook route answers 503.
    public var paddleWebhookSecrets: [String] = []
    /// How old a webhook signature may be.
    public var paddleWebhookTolerance: Duration = .seconds(5)
    /// Price id → plan.
    public var paddlePricePlans: [String: String] = [:]
    /// Networks whose forwarding headers are believed.
    public var trustedProxies: [IPNetwork] = []
    /// The one header trusted proxies set (`TRUSTED_PROXY_HEADER`); the other is ignored.
    public var trustedProxyHeader = ForwardingHeader.xForwardedFor
    /// How long a connection may take over its request head, sit idle, or stall a body.
    public var connectionTimeouts = ConnectionTimeouts()
    /// Rate-limit policies.
    public var rateLimitPolicies = RateLimitPolicy.defaults
    /// Profile cache TTL.
    public var profileCacheTTL: Duration = .seconds(600)
    /// Notifications cache TTL.
    public var notificationsCacheTTL: Duration = .seconds(300)
    /// Log level.
    public var logLevel: Logger.Level = .info
    /// `text` or `json`.
    public var logFormat = "text"
    /// Largest accepted request body.
    public var maxBodyBytes = 1 << 20
    /// bcrypt cost (12 in production; tests lower it).
    public var bcryptCost: UInt8 = 12
    /// Worker lanes run inside `envoy serve` when the queue is embedded.
    public var inProcessWorkerConcurrency = 2
    /// One log line per request (`ACCESS_LOG=true`).
    public var accessLog = false
    /// Where spans go over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// naming the traces URL itself); nil: no tracing. The other standard `OTEL_*` variables apply.
    public var otlpTracesEndpoint: String?
    /// The port `envoy worker` serves `/metrics` and `/health` on (0: none).
    public var workerMetricsPort = 9090
    /// The operators' token for `/admin` (nil: the console and its API are off).
    public var adminToken: String?

    /// The built-in defaults.
    public init() {}

    /// The variables whose values are secrets: marked so for the configuration reader (its access log shows them
    /// redacted), and never repeated by a summary or an error.
    public static let secretVariables: Set<String> = [
        "REDIS_URL", "DATABASE_URL", "JWT_SECRET", "MAILGUN_API_KEY", "PADDLE_API_KEY", "PADDLE_WEBHOOK_SECRET",
        "ADMIN_TOKEN",
    ]

    /// The process environment over the `.env` file in `directory` (the environment wins), read and validated.
    public static func load(
        directory: String = FileManager.default.currentDirectoryPath,
        processEnvironment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> AppConfiguration {
        try AppConfiguration(reader: reader(directory: directory, processEnvironment: processEnvironment))
    }

    /// The process environment over the `.env` file in `directory`, as one configuration reader; every access is
    /// reported to `accessReporter` (and to `CONFIG_ACCESS_LOG_FILE`), secrets redacted. The `.env` file is
    /// parsed by `DotEnv` (quotes, `export`, an error for a malformed line), then served like the environment.
    public static func reader(
        directory: String, processEnvironment: [String: String], accessReporter: (any AccessReporter)? = nil
    ) throws(ConfigurationError) -> ConfigReader {
        var providers = [Self.provider(processEnvironment)]
        if let contents = try? String(contentsOfFile: directory + "/.env", encoding: .utf8) {
            providers.append(Self.provider(try DotEnv.parse(contents)))
        }
        return ConfigReader(providers: providers, accessReporter: accessReporter)
    }

    /// Reads and validates `environment` alone; the first bad value throws an error naming its variable.
    public init(environment: [String: String]) throws(ConfigurationError) {
        try self.init(reader: ConfigReader(provider: Self.provider(environment)))
    }

    /// Variables as configuration, the secret ones marked.
    private static func provider(_ variables: [String: String]) -> EnvironmentVariablesProvider {
        EnvironmentVariablesProvider(environmentVariables: variables, secretsSpecifier: .specific(secretVariables))
    }

    /// Reads and validates every variable from `reader`; the first bad value throws an error naming its variable.
    public init(reader: ConfigReader) throws(ConfigurationError) {
        func value(_ name: String) -> String? {
            let raw = reader.string(forKey: ConfigKey([name]), isSecret: Self.secretVariables.contains(name))
            guard let raw = raw?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func seconds(_ name: String) throws(ConfigurationError) -> Duration? {
            guard let raw = value(name) else { return nil }
            guard let number = Int(raw), number >= 0 else {
                throw ConfigurationError(variable: name, problem: "must be a whole number of seconds, got \"\(raw)\"")
            }
            return .seconds(number)
        }
        if let host = value("HOST") { self.host = host }
        if let raw = value("PORT") {
            guard let port = Int(raw), (0...65535).contains(port) else {
                throw ConfigurationError(variable: "PORT", problem: "must be a port number 0-65535, got \"\(raw)\"")
            }
            self.port = port
        }
        if let raw = value("WORKER_METRICS_PORT") {
            guard let port = Int(raw), (0...65535).contains(port) else {
                throw ConfigurationError(
                    variable: "WORKER_METRICS_PORT", problem: "must be a port number 0-65535 (0: off), got \"\(raw)\"")
            }
            self.workerMetricsPort = port
        }
        if let traces = value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            otlpTracesEndpoint = try Self.otlpEndpoint(traces, variable: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        } else if let base = value("OTEL_EXPORTER_OTLP_ENDPOINT") {
            let base = try Self.otlpEndpoint(base, variable: "OTEL_EXPORTER_OTLP_ENDPOINT")
            otlpTracesEndpoint = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces"
        }
        switch value("ACCESS_LOG")?.lowercased() {
        case nil, "false", "0", "no": accessLog = false
        case "true", "1", "yes": accessLog = true
        case .some(let other):
            throw ConfigurationError(variable: "ACCESS_LOG", problem: "must be true or false, got \"\(other)\"")
        }
        self.adminToken = value("ADMIN_TOKEN")
        if let token = adminToken, token.utf8.count < 32 {
            throw ConfigurationError(variable: "ADMIN_TOKEN", problem: "must be at least 32 bytes long")
        }
        let caFile = value("REDIS_TLS_CA_FILE")
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw ConfigurationError(variable: "REDIS_TLS_CA_FILE", problem: "cannot read \(caFile)")
        }
        if let url = value("REDIS_URL") {
            do {
                self.redis = try RedisEndpoint(url: url, caFile: caFile)
            } catch {
                throw ConfigurationError(variable: "REDIS_URL", problem: error.detail)
            }
        }
        if let prefix = value("REDIS_KEY_PREFIX") {
            guard prefix.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }) else {
                throw ConfigurationError(variable: "REDIS_KEY_PREFIX", problem: "may hold letters, digits, _ - . only")
            }
            self.redisKeyPrefix = prefix
        }
        if let raw = value("REDIS_TIMEOUT_MS") {
            guard let milliseconds = Int(raw), milliseconds > 0 else {
                throw ConfigurationError(
                    variable: "REDIS_TIMEOUT_MS", problem: "must be a positive number of milliseconds")
            }
            self.redisTimeout = .milliseconds(milliseconds)
        }
        if let url = value("DATABASE_URL") {
            if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
                do {
                    self.postgres = try PostgresEndpoint(url: url)
                } catch {
                    throw ConfigurationError(variable: "DATABASE_URL", problem: "\(error) (value not shown)")
                }
            } else {
                guard url.hasPrefix("sqlite://"), url.count > "sqlite://".count else {
                    throw ConfigurationError(
                        variable: "DATABASE_URL",
                        problem: "must be sqlite:///path/to/file.db, sqlite://./relative.db or postgres://…")
                }
                self.databasePath = String(url.dropFirst("sqlite://".count))
            }
        }
        self.jwtSecret = value("JWT_SECRET")
        if let secret = jwtSecret, secret.utf8.count < 32 {
            throw ConfigurationError(variable: "JWT_SECRET", problem: "must be at least 32 bytes long")
        }
        if jwtSecret == nil && postgres != nil {
            // Instances sharing PostgreSQL run on several machines: a key generated on each would make every
            // instance refuse the others' tokens.
            throw ConfigurationError(
                variable: "JWT_SECRET", problem: "is required with a PostgreSQL DATABASE_URL (shared by every instance)"
            )
        }
        switch (value("MAILGUN_API_KEY"), value("MAILGUN_DOMAIN")) {
        case (nil, nil): break
        case (.some(let key), .some(let domain)):
            let base = value("MAILGUN_API_BASE_URL") ?? "https://api.mailgun.net"
            guard let url = URL(string: base), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw ConfigurationError(variable: "MAILGUN_API_BASE_URL", problem: "must be an http(s) URL")
            }
            var mailgun = MailgunMailer.Configuration(apiKey: key, domain: domain, baseURL: base)
            switch value("MAILGUN_TEST_MODE")?.lowercased() {
            case nil, "false", "0", "no": break
            case "true", "1", "yes": mailgun.testMode = true
            case .some: throw ConfigurationError(variable: "MAILGUN_TEST_MODE", problem: "must be true or false")
            }
            self.mailgun = mailgun
        case (nil, .some):
            throw ConfigurationError(variable: "MAILGUN_API_KEY", problem: "is required when MAILGUN_DOMAIN is set")
        case (.some, nil):
            throw ConfigurationError(variable: "MAILGUN_DOMAIN", problem: "is required when MAILGUN_API_KEY is set")
        }
        if let dir = value("MAIL_OUTBOX_DIR") { self.mailOutboxDirectory = dir }
        if let dir = value("EMAIL_TEMPLATES_DIR") { self.emailTemplatesDirectory = dir }
        if let from = value("EMAIL_FROM") {
            guard EmailAddress.isValid(from) else {
                throw ConfigurationError(variable: "EMAIL_FROM", problem: "is not a valid email address")
            }
            self.sender.address = from
        }
        if let name = value("EMAIL_FROM_NAME") { self.sender.name = name }
        self.paddleAPIKey = value("PADDLE_API_KEY")
        if let environment = value("PADDLE_ENVIRONMENT") {
            guard ["sandbox", "production"].contains(environment) else {
                throw ConfigurationError(
                    variable: "PADDLE_ENVIRONMENT", problem: "must be sandbox or production, got \"\(environment)\"")
            }
            self.paddleEnvironment = environment
        }
        if let base = value("PADDLE_API_BASE_URL") {
            guard let url = URL(string: base), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw ConfigurationError(variable: "PADDLE_API_BASE_URL", problem: "must be an http(s) URL")
            }
            self.paddleAPIBaseURL = base
        }
        if let tolerance = value("PADDLE_WEBHOOK_TOLERANCE") {
            guard let seconds = Int(tolerance), (1...3600).contains(seconds) else {
                throw ConfigurationError(
                    variable: "PADDLE_WEBHOOK_TOLERANCE", problem: "must be seconds from 1 to 3600")
            }
            self.paddleWebhookTolerance = .seconds(seconds)
        }
        self.paddleWebhookSecrets =
            value("PADDLE_WEBHOOK_SECRET").map {
                $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            } ?? []
        for plan in ["BASIC", "PREMIUM", "ENTERPRISE"] {
            if let price = value("PADDLE_PRICE_ID_\(plan)") { paddlePricePlans[price] = plan.lowercased() }
        }
        if let proxies = value("TRUSTED_PROXIES") {
            self.trustedProxies = try proxies.split(separator: ",").map {
                (text) throws(ConfigurationError) -> IPNetwork in
                guard let network = IPNetwork(text.trimmingCharacters(in: .whitespaces)) else {
                    throw ConfigurationError(
                        variable: "TRUSTED_PROXIES", problem: "\"\(text)\" is not an address or CIDR")
                }
                return network
            }
        }
        if let header = value("TRUSTED_PROXY_HEADER") {
            guard let parsed = ForwardingHeader(rawValue: header.lowercased()) else {
                throw ConfigurationError(
                    variable: "TRUSTED_PROXY_HEADER", problem: "must be x-forwarded-for or forwarded, got \"\(header)\""
                )
            }
            self.trustedProxyHeader = parsed
        }
        func timeout(_ name: String) throws(ConfigurationError) -> Duration? {
            guard let raw = value(name) else { return nil }
            guard let seconds = Double(raw), seconds > 0, seconds <= 86_400 else {
                throw ConfigurationError(variable: name, problem: "must be a number of seconds above 0, got \"\(raw)\"")
            }
            return .milliseconds(Int64((seconds * 1000).rounded()))
        }
        if let header = try timeout("HTTP_HEADER_TIMEOUT") { self.connectionTimeouts.header = header }
        if let idle = try timeout("HTTP_IDLE_TIMEOUT") { self.connectionTimeouts.idle = idle }
        if let body = try timeout("HTTP_BODY_TIMEOUT") { self.connectionTimeouts.body = body }
        if let file = value("RATE_LIMITS_FILE") { self.rateLimitPolicies = try Self.loadPolicies(file) }
        if let cost = value("BCRYPT_COST") {
            guard let parsed = UInt8(cost), (4...31).contains(parsed) else {
                throw ConfigurationError(variable: "BCRYPT_COST", problem: "must be 4…31")
            }
            self.bcryptCost = parsed
        }
        if let ttl = try seconds("PROFILE_CACHE_TTL") { self.profileCacheTTL = ttl }
        if let ttl = try seconds("NOTIFICATIONS_CACHE_TTL") { self.notificationsCacheTTL = ttl }
        if let level = value("LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigurationError(
                    variable: "LOG_LEVEL",
                    problem: "must be one of trace, debug, info, notice, warning, error, critical")
            }
            self.logLevel = parsed
        }
        if let format = value("LOG_FORMAT") {
            guard ["text", "json"].contains(format) else {
                throw ConfigurationError(variable: "LOG_FORMAT", problem: "must be text or json")
            }
            self.logFormat = format
        }
    }

    static func loadPolicies(_ path: String) throws(ConfigurationError) -> [RateLimitPolicy] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(variable: "RATE_LIMITS_FILE", problem: "cannot read \(path)")
        }
        let policies: [RateLimitPolicy]
        do {
            policies = try JSONDecoder().decode([RateLimitPolicy].self, from: data)
        } catch {
            throw ConfigurationError(
                variable: "RATE_LIMITS_FILE", problem: "\(path) is not a JSON array of policies: \(error)")
        }
        var names = Set<String>()
        for policy in policies {
            do { try policy.validate() } catch {
                throw ConfigurationError(variable: "RATE_LIMITS_FILE", problem: error.description)
            }
            guard names.insert(policy.name).inserted else {
                throw ConfigurationError(
                    variable: "RATE_LIMITS_FILE", problem: "policy name \"\(policy.name)\" appears twice")
            }
        }
        return policies
    }

    /// `postgres://user@host:port/db` (no password) or `sqlite PATH`.
    var databaseDescription: String { postgres?.description ?? "sqlite \(databasePath)" }

    /// An OTLP endpoint: an http(s) URL with a host, else a configuration error naming `variable`.
    static func otlpEndpoint(_ text: String, variable: String) throws(ConfigurationError) -> String {
        guard let url = URLComponents(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
            url.host?.isEmpty == false
        else {
            throw ConfigurationError(variable: variable, problem: "must be an http:// or https:// URL")
        }
        return text
    }

    /// The settings in use, for the start-up log line (`Backend.summary` adds the providers wired); no secrets.
    public var summary: Logger.Metadata {
        [
            "listen": "\(host):\(port)",
            "database": "\(databaseDescription)",
            "ratelimit.policies": "\(rateLimitPolicies.map(\.name).joined(separator: ","))",
            "paddle.webhook": paddleWebhookSecrets.isEmpty
                ? "not configured" : "\(paddleWebhookSecrets.count) secret(s)",
            "paddle.api": paddleAPIKey == nil ? "not configured" : "\(paddleEnvironment) \(paddleAPIBaseURL ?? "")",
            "trusted_proxies": "\(trustedProxies.map(\.description).joined(separator: ","))",
            "trusted_proxy_header": "\(trustedProxyHeader.rawValue)",
            "jwt.secret": jwtSecret == nil ? "generated (persisted beside the database)" : "from JWT_SECRET",
            "admin": adminToken == nil ? "off" : "on (/admin)",
            "tracing": otlpTracesEndpoint.map { "otlp \(URLComponents(string: $0)?.host ?? "")" } ?? "off",
        ]
    }
}
