import EnvoyFramework
import EnvoyPlugins
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// Envoy's backend, composed from configuration: stores, caches, limiter, queue, mailer and routes.
/// `envoy serve`, `envoy worker`, the tests and the simulator all build it through `Backend.make`.
public struct Backend: Sendable {
    /// The validated configuration.
    public let configuration: AppConfiguration
    /// The root logger.
    public let logger: Logger
    /// The application's database (SQLite or PostgreSQL), migrated.
    public let database: any SQLDatabase
    /// The Redis client, when `REDIS_URL` is set.
    public let redis: RedisClient?
    /// Users.
    public let users: any UserStore
    /// Notifications.
    public let notifications: any NotificationStore
    /// The cache provider under both caches.
    public let cacheProvider: any CacheProvider
    /// Cached profiles.
    public let profileCache: ScopedCache<UserProfile>
    /// Cached notification pages.
    public let notificationsCache: ScopedCache<NotificationPage>
    /// Where rate-limit counts live.
    public let rateLimitStore: any RateLimitStore
    /// The background task queue (its hot path for producers and workers, and its administration).
    public let taskQueue: any AdministeredTaskQueue
    /// Subscriptions, payments and processed Paddle events.
    public let billing: BillingStore
    /// Email, checked and queued.
    public let emails: EmailQueue
    /// The task types this backend runs (Envoy's own, then those `register` adds).
    public private(set) var tasks: TaskRegistry
    /// Access tokens.
    public let tokens: AccessTokens
    /// Password hashing.
    public let passwords: PasswordHasher
    /// Where email goes.
    public let mailer: any Mailer
    /// Envoy's version (`envoy --version`, `envoy_build_info`).
    public static let version = "0.1.0"
    /// The Prometheus registry `/metrics` renders.
    public let metricsRegistry: PrometheusCollectorRegistry
    /// `process_*` and `envoy_build_info`, refreshed at each scrape.
    let processMetrics: ProcessMetrics
    /// The factory every metric is created from.
    public let metrics: any MetricsFactory
    let queueGauges: QueueGauges
    /// Redis masters known and reachable, when there is a Redis.
    let redisGauges: RedisGauges?
    /// The refusals the limiter remembers (and counts), which an operator's reset makes it forget.
    let deniedKeys = DeniedKeys(capacity: 10_000)
    let json: JSONBody
    /// Routes application code added with `addRoutes` and `addCachedRoute`.
    private var applicationRoutes: [@Sendable (RouterGroup<EnvoyRequestContext>, CachedReads) -> Void] = []
    /// What application code said of its routes (`describe`), for the OpenAPI document.
    var applicationOperations: [APIOperation] = []
    /// The cache reads cached routes declare.
    typealias CachedReads = DeclaredReadAheads<EnvoyRequestContext>

    /// The providers a plugin author may replace; nil means the embedded default.
    public struct Providers: Sendable {
        /// Replaces the in-memory cache.
        public var cache: (any CacheProvider)?
        /// Replaces the in-memory rate-limit store.
        public var rateLimitStore: (any RateLimitStore)?
        /// Replaces the embedded (SQL) task queue; the embedded one becomes its outbox.
        public var taskQueue: (any AdministeredTaskQueue)?
        /// Replaces the file mailer.
        public var mailer: (any Mailer)?

        /// Providers to use instead of the embedded ones.
        public init(
            cache: (any CacheProvider)? = nil, rateLimitStore: (any RateLimitStore)? = nil,
            taskQueue: (any AdministeredTaskQueue)? = nil, mailer: (any Mailer)? = nil
        ) {
            self.cache = cache
            self.rateLimitStore = rateLimitStore
            self.taskQueue = taskQueue
            self.mailer = mailer
        }
    }

    /// Builds the backend; throws `ConfigurationError` naming the variable for settings this build cannot honour.
    public static func make(
        configuration: AppConfiguration, providers: Providers = Providers(), logger: Logger
    ) async throws -> Backend {
        // Templates first: a bad EMAIL_TEMPLATES_DIR stops start-up before anything is opened or written.
        let templates: EmailTemplates
        if let directory = configuration.emailTemplatesDirectory {
            do {
                templates = try await EmailTemplates.load(directory: directory)
            } catch {
                throw ConfigurationError(variable: "EMAIL_TEMPLATES_DIR", problem: "\(error)")
            }
        } else {
            templates = try EmailTemplates.builtIn()
        }
        let registry = PrometheusCollectorRegistry()
        let metrics = DocumentedMetricsFactory(registry: registry)
        let database = try await openDatabase(configuration, logger: logger)
        let redis = try await connectRedis(configuration, logger: logger, metrics: metrics)
        let cache =
            providers.cache ?? redis.map { RedisCache(client: $0, prefix: configuration.redisKeyPrefix) }
            ?? MemoryCache()
        let (queue, local) = composeQueue(
            configuration, database: database, redis: redis, custom: providers.taskQueue, logger: logger,
            metrics: metrics)
        let appDatabase = database.counted(as: "app", metrics: metrics)
        let secretPath =
            ((configuration.databasePath as NSString).deletingLastPathComponent.nonEmpty ?? ".") + "/envoy.jwt-secret"
        let secret = try AccessTokens.secret(configured: configuration.jwtSecret, persistedAt: secretPath)
        if secret.generated {
            logger.warning(
                "JWT_SECRET is unset; generated one and saved it beside the database",
                metadata: ["path": "\(secretPath)"])
        }
        let mailer =
            providers.mailer ?? configuration.mailgun.map { MailgunMailer(configuration: $0) }
            ?? FileMailer(directory: URL(fileURLWithPath: configuration.mailOutboxDirectory))
        let composer = EmailComposer(templates: templates, sender: configuration.sender)
        let emails = EmailQueue(queue: queue, composer: composer)
        let profileCache = ScopedCache<UserProfile>(
            name: "profile", provider: cache, ttl: configuration.profileCacheTTL, logger: logger, metrics: metrics)
        let billing = BillingStore(database: appDatabase, pricePlans: configuration.paddlePricePlans)
        let paddle = configuration.paddleAPIKey.map {
            PaddleClient(
                configuration: .init(
                    apiKey: $0, environment: configuration.paddleEnvironment, baseURL: configuration.paddleAPIBaseURL))
        }
        var tasks = TaskRegistry()
        tasks.register(SendEmail(mailer: mailer, composer: composer))
        tasks.register(SendBulkEmail(mailer: mailer, composer: composer, queue: queue))
        tasks.register(
            ProcessPaddleWebhook(
                store: billing, paddle: paddle, emails: emails, profiles: profileCache, metrics: metrics))
        return Backend(
            configuration: configuration,
            logger: logger,
            database: appDatabase,
            redis: redis,
            users: SQLUserStore(database: appDatabase, outbox: local),
            notifications: SQLNotificationStore(database: appDatabase),
            cacheProvider: cache,
            profileCache: profileCache,
            notificationsCache: ScopedCache(
                name: "notifications", provider: cache, ttl: configuration.notificationsCacheTTL, logger: logger,
                metrics: metrics),
            rateLimitStore: providers.rateLimitStore
                ?? redis.map { RedisRateLimitStore(client: $0, prefix: configuration.redisKeyPrefix) }
                ?? MemoryRateLimitStore(),
            taskQueue: queue,
            billing: billing,
            emails: emails,
            tasks: tasks,
            tokens: await AccessTokens(secret: secret.secret, lifetime: configuration.accessTokenLifetime),
            passwords: try await PasswordHasher(cost: configuration.bcryptCost),
            mailer: mailer,
            metricsRegistry: registry,
            processMetrics: ProcessMetrics(registry: registry, version: Self.version),
            metrics: metrics,
            queueGauges: QueueGauges(metrics: metrics, queues: tasks.queues),
            redisGauges: redis.map { _ in RedisGauges(metrics: metrics) },
            json: JSONBody(limit: configuration.maxBodyBytes)
        )
    }

    /// Every route, behind the middleware chain: request id → span (tracing on) → metrics → problems → client
    /// address → (token → limiter → routes);
    /// health, metrics and the Paddle webhook are not limited.
    public func router() -> Router<EnvoyRequestContext> {
        // Every GET route answers HEAD too (its headers, no body).
        let router = Router(context: EnvoyRequestContext.self, options: .autoGenerateHeadEndpoints)
        let methods = RouteMethods()
        let proxies = ClientAddressResolver(
            trustedProxies: configuration.trustedProxies, header: configuration.trustedProxyHeader)
        router.addMiddleware {
            RequestIDMiddleware(resolver: proxies)  // outside the problems, so that error answers carry it too
            RequestSpanMiddleware()  // while tracing is on: the request's span, its ids on the request's log lines
            RequestMetricsMiddleware(metrics: metrics, accessLog: configuration.accessLog)
            ProblemMiddleware(routes: methods)
            ClientAddressMiddleware(resolver: proxies)
        }
        let document = apiDocument
        addSystemRoutes(to: router.group(), document: document)
        addPaymentRoutes(to: router.group())  // authenticated by signature, not limited per IP
        addAdminRoutes(to: router.group())  // its own token, its own limit on wrong tokens
        let reads = CachedReads()
        let limited = router.group().addMiddleware {
            AuthenticationMiddleware(tokens: tokens)
            RateLimitMiddleware(
                policies: configuration.rateLimitPolicies, store: rateLimitStore, logger: logger, metrics: metrics,
                denied: deniedKeys, readAhead: { request, context in reads.read(for: request, context: context) })
        }
        addAuthRoutes(to: limited)
        addProfileRoutes(to: limited, reads: reads)
        addNotificationRoutes(to: limited, reads: reads)
        for add in applicationRoutes { add(limited, reads) }
        methods.record(router.routes)
        let undescribed = document.mismatches(router.routes).undescribed
        if !undescribed.isEmpty {
            logger.warning(
                "routes missing from /openapi.json; describe them with Backend.describe",
                metadata: ["routes": "\(undescribed.joined(separator: ", "))"])
        }
        return router
    }

    /// Adds application routes, registered with Envoy's own behind the token check and the rate limiter (the
    /// policies match them by method and route template); call it before `router()` or `application()`.
    public mutating func addRoutes(_ add: @escaping @Sendable (_ routes: RouterGroup<EnvoyRequestContext>) -> Void) {
        applicationRoutes.append { routes, _ in add(routes) }
    }

    /// Adds a cached `GET path` for the caller's own data: answered from `cache` under the caller's user id and
    /// `variant` of the request (`X-Cache: HIT`, `MISS`, `BYPASS`), loaded by `load` on a miss. Its cache read is
    /// declared with the route, so the rate limiter sends it with its decision: one Redis round trip for both.
    public mutating func addCachedRoute<Value: Codable & Sendable>(
        _ path: String, cache: ScopedCache<Value>,
        variant: @escaping @Sendable (Request) throws -> String = { _ in "" },
        load: @escaping @Sendable (_ userID: String, Request) async throws -> Value
    ) {
        applicationRoutes.append { routes, reads in
            Self.cachedRoute(path, on: routes, reads: reads, cache: cache, variant: variant, load: load)
        }
    }

    /// Registers a cached `GET path` and declares the cache read it starts with (see `addCachedRoute`).
    static func cachedRoute<Value: Codable & Sendable>(
        _ path: String, on routes: RouterGroup<EnvoyRequestContext>, reads: CachedReads, cache: ScopedCache<Value>,
        variant: @escaping @Sendable (Request) throws -> String,
        load: @escaping @Sendable (_ userID: String, Request) async throws -> Value
    ) {
        reads.declare(get: path) { request, context in
            guard let userID = context.identity.userID, let variant = try? variant(request) else { return nil }
            return cache.readAhead(scope: userID, variant: variant)
        }
        routes.get(RouterPath(path)) { request, context -> Response in
            let userID = try context.requireUser()
            let (json, status) = try await cache.fetchJSON(
                scope: userID, variant: try variant(request), prefetched: context.prefetched
            ) { try await load(userID, request) }
            return JSONResponse.cached(json: json, status)
        }
    }

    /// Adds a task type that this backend's workers run (in `envoy serve`'s in-process worker and `worker(_:)`).
    public mutating func register<Handler: TaskHandler>(_ handler: Handler) {
        tasks.register(handler)
        queueGauges.report([Handler.queue])
    }

    /// The settings and the providers actually wired (an injected one by its type), for the start-up log line; no
    /// secrets.
    public var summary: Logger.Metadata {
        var summary = configuration.summary
        summary["cache"] = "\(providerDescription(cacheProvider))"
        summary["ratelimit.store"] = "\(providerDescription(rateLimitStore))"
        summary["queue"] = "\(providerDescription(taskQueue))"
        summary["mailer"] = "\(providerDescription(mailer))"
        summary["task.types"] = "\(tasks.taskTypes.joined(separator: ","))"
        return summary
    }

    /// Changes a user's plan outside Paddle (an admin grant) and invalidates their cached profile on every instance.
    @discardableResult
    public func changePlan(userID: String, to plan: String) async throws -> UserProfile? {
        let profile = try await users.setPlan(id: userID, plan: plan)
        await profileCache.invalidate(scope: userID)
        return profile
    }

    /// A worker for this backend's task types.
    public func worker(_ configuration: TaskWorker.Configuration) -> TaskWorker {
        TaskWorker(
            queue: taskQueue, registry: tasks, configuration: configuration, logger: logger, metrics: metrics,
            directory: taskQueue)
    }

    /// The task queue, and the queue in the application's database under it: the embedded queue itself, or the
    /// outbox in front of Redis or `custom` — where a task waits while that queue is down, and where a sign-up's
    /// welcome email commits with the user's row. Counted apart, so that worker polling shows apart from request
    /// queries in the metrics.
    static func composeQueue(
        _ configuration: AppConfiguration, database: any SQLDatabase, redis: RedisClient?,
        custom: (any AdministeredTaskQueue)?, logger: Logger, metrics: any MetricsFactory
    ) -> (queue: any AdministeredTaskQueue, local: SQLTaskQueue) {
        let primary: (any AdministeredTaskQueue)? =
            custom ?? redis.map { RedisTaskQueue(client: $0, prefix: configuration.redisKeyPrefix) }
        let local = SQLTaskQueue(database: database.counted(as: primary == nil ? "queue" : "outbox", metrics: metrics))
        guard let primary else { return (local, local) }
        return (OutboxTaskQueue(primary: primary, outbox: local, logger: logger, metrics: metrics), local)
    }

    /// The task queue `configuration` names, opened for inspection (`envoy queues`), and a description of where it
    /// is (no secrets); nil when it is a SQLite file that does not exist yet: nothing was ever queued there, and
    /// looking creates neither a database nor a token secret.
    public static func existingQueue(configuration: AppConfiguration, logger: Logger) async throws
        -> (queue: any TaskQueueAdministration, store: String)?
    {
        let metrics = NOOPMetricsHandler.instance
        let databaseExists =
            configuration.postgres != nil || FileManager.default.fileExists(atPath: configuration.databasePath)
        let redis = try await connectRedis(configuration, logger: logger)
        if let redis, !databaseExists {
            return (
                RedisTaskQueue(client: redis, prefix: configuration.redisKeyPrefix),
                "redis \(redis.configuration.endpoint)"
            )
        }
        guard databaseExists else { return nil }
        let database = try await openDatabase(configuration, logger: logger)
        let (queue, _) = composeQueue(
            configuration, database: database, redis: redis, custom: nil, logger: logger, metrics: metrics)
        let store = configuration.databaseDescription
        return (queue, redis.map { "redis \($0.configuration.endpoint) (outbox: \(store))" } ?? store)
    }

    /// Opens `DATABASE_URL` (PostgreSQL) or the SQLite file, and applies the migrations it lacks.
    static func openDatabase(_ configuration: AppConfiguration, logger: Logger) async throws -> any SQLDatabase {
        let database: any SQLDatabase
        if let endpoint = configuration.postgres {
            let postgres = PostgresDatabase(endpoint: endpoint, logger: logger)
            try await postgres.waitUntilReachable(timeout: .seconds(30))
            database = postgres
        } else {
            database = try await SQLiteDatabase.open(path: configuration.databasePath)
        }
        try await database.migrate(AppSchema.migrations)
        return database
    }

    /// Connects to `REDIS_URL`, if set, and logs what it found. Refused credentials or a refused database stop
    /// start-up; an unreachable server does not (health says `down`, and each provider degrades as documented).
    static func connectRedis(
        _ configuration: AppConfiguration, logger: Logger, metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) async throws -> RedisClient? {
        guard let endpoint = configuration.redis else { return nil }
        let client: RedisClient
        do {
            client = try RedisClient(
                configuration: .init(endpoint: endpoint, commandTimeout: configuration.redisTimeout), logger: logger,
                metrics: metrics)
        } catch {
            throw ConfigurationError(variable: "REDIS_URL", problem: "\(error)")
        }
        do {
            let version = try await client.serverVersion()
            logger.info("redis connected", metadata: ["redis": "\(endpoint)", "redis.version": "\(version)"])
        } catch  where error.code == .authenticationFailed {
            throw ConfigurationError(
                variable: "REDIS_URL", problem: "Redis refused the credentials (\(error.detail))")
        } catch  where error.code == .databaseRefused {
            throw ConfigurationError(
                variable: "REDIS_URL", problem: "Redis refused the database index (\(error.detail))")
        } catch {
            logger.error(
                "redis unreachable at start-up; continuing degraded",
                metadata: ["redis": "\(endpoint)", "error": "\(error)"])
        }
        return client
    }

    /// What holds the backend's connections (the Redis client, the database's pool), to list first in a service
    /// group: a group stops its services in reverse order, so these close their connections last.
    public var connections: [any Service] {
        (redis.map { [$0] } ?? []) + database.services
    }

    /// The HTTP application; with `inProcessWorker` (default: when the queue is embedded) it also runs a worker.
    public func application(inProcessWorker: Bool? = nil) -> some ApplicationProtocol {
        var services = connections
        services += [
            InvalidationRetrier([
                { await profileCache.retryPendingInvalidations() },
                { await notificationsCache.retryPendingInvalidations() },
            ])
        ]
        services += taskQueue.services
        if let administered = rateLimitStore as? any RateLimitAdministration {
            services.append(RateLimitResetWatcher(store: administered, denied: deniedKeys))
        }
        if inProcessWorker ?? taskQueue.runsWorkerInProcess {
            services.append(worker(.init(concurrency: configuration.inProcessWorkerConcurrency)))
        }
        // Connections are capped below the descriptor limit, so the server itself never runs out of descriptors.
        let connectionLimit = DescriptorLimit.connectionCapacity(limit: DescriptorLimit.raiseToHardLimit() ?? 1024)
        return Application(
            router: router(),
            server: .http1OnEventLoops(timeouts: configuration.connectionTimeouts),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "envoy",
                availableConnectionsDelegate: .maximum(connectionLimit, logger: logger)),
            services: services,
            logger: logger
        )
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
