import EnvoyFramework
import EnvoyPlugins
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// The operators' console (`/admin`, HTML forms) and the JSON API under `/admin/api/` it and scripts use; both
/// exist only when `ADMIN_TOKEN` is set.
extension Backend {
    func addAdminRoutes(to router: RouterGroup<EnvoyRequestContext>) {
        guard let token = configuration.adminToken else { return }
        let access = AdminAccess(token: token)
        let admin = router.group("/admin").addMiddleware { AdminHeadersMiddleware() }
        let console = AdminConsole(backend: self, access: access)

        admin.get("/login") { request, _ in
            AdminPages.signIn(error: request.uri.queryParameters.get("error"))
        }
        admin.post("/login") { request, context in try await console.signIn(request, context: context) }
        admin.post("/logout") { request, context in
            _ = try await console.form(request, context: context)
            return AdminPages.redirect("/admin/login", clearingSession: true)
        }
        admin.get("/assets/console.css") { _, _ in AdminPages.asset(AdminAssets.css, type: "text/css") }
        admin.get("/assets/console.js") { _, _ in AdminPages.asset(AdminAssets.javascript, type: "text/javascript") }

        // Pages: a session cookie, or the sign-in page.
        admin.get("") { request, context in
            guard let session = console.session(of: request) else { return AdminPages.redirect("/admin/login") }
            return AdminPages.overview(try await console.overview(), csrf: access.csrf(for: session))
        }
        // A page checks its query first: a bad one is a 400 with or without a session.
        admin.get("/dead") { request, context in
            let filter = try DeadFilter(request.uri.queryParameters)
            guard let session = console.session(of: request) else { return AdminPages.redirect("/admin/login") }
            return AdminPages.dead(
                try await console.dead(filter), filter: filter, csrf: access.csrf(for: session),
                done: request.uri.queryParameters.get("done"))
        }
        admin.get("/queues/{queue}") { request, context in
            let queue = try context.parameters.require("queue")
            let state = try AdminConsole.state(request.uri.queryParameters.get("state"))
            guard let session = console.session(of: request) else { return AdminPages.redirect("/admin/login") }
            return AdminPages.queue(
                queue, state: state, tasks: try await taskQueue.tasks(queue: queue, state: state, limit: 200),
                csrf: access.csrf(for: session))
        }
        admin.get("/tasks/{id}") { request, context in
            guard let session = console.session(of: request) else { return AdminPages.redirect("/admin/login") }
            let id = try context.parameters.require("id")
            guard let task = try await taskQueue.task(id: id) else {
                return AdminPages.notFound("No task \(id): it does not exist, or it completed.")
            }
            return AdminPages.task(await console.view(task), csrf: access.csrf(for: session))
        }
        admin.post("/dead/retry") { request, context in
            let form = try await console.form(request, context: context)
            let count = try await console.act(on: form, retry: true)
            return AdminPages.redirect(form.back(done: "retried \(count)"))
        }
        admin.post("/dead/delete") { request, context in
            let form = try await console.form(request, context: context)
            let count = try await console.act(on: form, retry: false)
            return AdminPages.redirect(form.back(done: "deleted \(count)", deleted: true))
        }

        admin.get("/limits") { request, context in
            guard let session = console.session(of: request) else { return AdminPages.redirect("/admin/login") }
            let subject = request.uri.queryParameters.get("subject")
            var usage: [LimitUsage]?
            if let subject { usage = try await console.limits(of: subject) }
            return AdminPages.limits(
                subject: subject, usage: usage, refused: console.mostRefused(), csrf: access.csrf(for: session),
                done: request.uri.queryParameters.get("done"))
        }
        admin.post("/limits/reset") { request, context in
            let form = try await console.form(request, context: context)
            let subject = form.fields["subject"] ?? ""
            let count = try await console.resetLimits(of: subject, context: context)
            return AdminPages.redirect(
                "/admin/limits?subject=\(AdminForm.escape(subject))&done=\(AdminForm.escape("reset \(count) window(s)"))"
            )
        }

        // The JSON API (snake_case keys): `Authorization: Bearer ADMIN_TOKEN`, or the console's session (and its
        // CSRF token on a POST or DELETE).
        let api = admin.group("/api")
        @Sendable func answer(_ value: some Encodable) throws -> Response {
            try JSONResponse.make(value, keys: .snakeCase)
        }
        api.get("/overview") { request, context in
            try await console.authorize(request, context: context)
            return try answer(try await console.overview())
        }
        api.get("/queues") { request, context in
            try await console.authorize(request, context: context)
            return try answer(try await taskQueue.stats())
        }
        api.get("/queues/{queue}/tasks") { request, context in
            try await console.authorize(request, context: context)
            let state = try AdminConsole.state(request.uri.queryParameters.get("state"))
            let limit = try AdminConsole.limit(request.uri.queryParameters)
            let tasks = try await taskQueue.tasks(
                queue: try context.parameters.require("queue"), state: state, limit: limit)
            return try answer(tasks.map(TaskView.init))
        }
        api.get("/tasks/{id}") { request, context in
            try await console.authorize(request, context: context)
            let id = try context.parameters.require("id")
            guard let task = try await taskQueue.task(id: id) else {
                throw Problem.notFound("No task \(id): it does not exist, or it completed.")
            }
            return try answer(await console.view(task))
        }
        api.get("/workers") { request, context in
            try await console.authorize(request, context: context)
            return try answer(try await taskQueue.liveWorkers())
        }
        api.get("/dead") { request, context in
            try await console.authorize(request, context: context)
            return try answer(try await console.dead(try DeadFilter(request.uri.queryParameters)))
        }
        api.post("/dead/{id}/retry") { request, context in
            try await console.authorize(request, context: context)
            let id = try context.parameters.require("id")
            guard try await console.act(ids: [id], filter: nil, retry: true) == 1 else {
                throw Problem.notFound("No dead task \(id).")
            }
            return try answer(["retried": 1])
        }
        api.delete("/dead/{id}") { request, context in
            try await console.authorize(request, context: context)
            let id = try context.parameters.require("id")
            guard try await console.act(ids: [id], filter: nil, retry: false) == 1 else {
                throw Problem.notFound("No dead task \(id).")
            }
            return try answer(["deleted": 1])
        }
        for (path, retry) in [("/dead/retry", true), ("/dead/delete", false)] {
            api.post(RouterPath(path)) { request, context in
                try await console.authorize(request, context: context)
                let action = try await json.decode(DeadAction.self, from: request)
                let count = try await console.act(
                    ids: action.ids,
                    filter: action.all == true ? DeadFilter(type: action.type, error: action.error) : nil,
                    retry: retry)
                return try answer([retry ? "retried" : "deleted": count])
            }
        }
        api.get("/limits") { request, context in
            try await console.authorize(request, context: context)
            return try answer(console.mostRefused())
        }
        api.get("/limits/{key}") { request, context in
            try await console.authorize(request, context: context)
            let key = try console.subject(context)
            return try answer(LimitReport(key: key, policies: try await console.limits(of: key)))
        }
        api.delete("/limits/{key}") { request, context in
            try await console.authorize(request, context: context)
            let key = try console.subject(context)
            return try answer(LimitsReset(key: key, reset: try await console.resetLimits(of: key, context: context)))
        }
        // Any other POST here is refused like a known one without its CSRF token (403), unless it carries a valid
        // session and CSRF token or the Bearer token: only then is it told the path does not exist (404).
        admin.post("**") { request, context -> Response in
            guard request.headers[.authorization] != nil || console.session(of: request) != nil else {
                throw Problem(.forbidden, detail: "Sign in to the console first.")
            }
            try await console.authorize(request, context: context)
            throw Problem.notFound("\(request.uri.path) is not a console action.")
        }
    }
}

/// What the console's handlers share: the backend, the access rules, and the work behind pages and API alike.
struct AdminConsole: Sendable {
    let backend: Backend
    let access: AdminAccess

    /// The valid session cookie of `request`, if any.
    func session(of request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == AdminAccess.cookie, access.isValid(session: String(parts[1])) {
                    return String(parts[1])
                }
            }
        }
        return nil
    }

    /// The client's address, for limiting and logging failed attempts.
    func client(_ context: EnvoyRequestContext) -> String { context.identity.clientAddress?.description ?? "unknown" }

    /// Checks the sign-in form's token; sets the session cookie, or counts and logs the failure.
    func signIn(_ request: Request, context: EnvoyRequestContext) async throws -> Response {
        let client = client(context)
        let fields = try await AdminForm.fields(request, limit: backend.json.limit)
        guard let token = fields["token"] else {
            throw Problem(.badRequest, detail: "The sign-in form has no token field.")
        }
        guard !access.failures.isBlocked(client) else {
            context.logger.warning("admin sign-in refused: too many wrong tokens", metadata: ["ip": "\(client)"])
            return AdminPages.redirect("/admin/login?error=too%20many%20attempts%3B%20wait%2015%20minutes")
        }
        guard access.isToken(token) else {
            access.failures.recordFailure(client)
            context.logger.warning("admin sign-in refused: wrong token", metadata: ["ip": "\(client)"])
            return AdminPages.redirect("/admin/login?error=wrong%20token")
        }
        context.logger.notice("admin signed in", metadata: ["ip": "\(client)"])
        let secure = backend.forwardedOverTLS(request, context: context)
        return AdminPages.redirect("/admin", session: access.newSession(), secure: secure)
    }

    /// A POSTed console form, checked: a valid session and its CSRF token, else 403.
    func form(_ request: Request, context: EnvoyRequestContext) async throws -> AdminForm {
        guard let session = session(of: request) else {
            throw Problem(.forbidden, detail: "Sign in to the console first.")
        }
        let fields = try await AdminForm.fields(request, limit: backend.json.limit)
        guard let csrf = fields["csrf"], access.isCSRF(csrf, for: session) else {
            context.logger.warning(
                "admin action refused: missing or wrong CSRF token", metadata: ["ip": "\(client(context))"])
            throw Problem(.forbidden, detail: "The form's CSRF token is missing or wrong; reload the page.")
        }
        return AdminForm(fields: fields)
    }

    /// Lets an API call through with the Bearer token, or with the console's session (a POST also with its
    /// `X-CSRF-Token`); wrong tokens are counted, logged and, past the limit, refused with 429.
    func authorize(_ request: Request, context: EnvoyRequestContext) async throws {
        let client = client(context)
        if let header = request.headers[.authorization] {
            guard !access.failures.isBlocked(client) else {
                throw Problem(
                    .tooManyRequests, detail: "Too many wrong admin tokens from this address; wait 15 minutes.")
            }
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer", access.isToken(String(parts[1])) else {
                access.failures.recordFailure(client)
                context.logger.warning("admin API refused: wrong token", metadata: ["ip": "\(client)"])
                throw Problem.unauthorized("The admin token is not valid.")
            }
            return
        }
        guard let session = session(of: request) else {
            throw Problem.unauthorized("An admin token is required (Authorization: Bearer …).")
        }
        if request.method != .get && request.method != .head {
            // A console form carries it as a field, a script as a header.
            var csrf = request.headers[AdminHeadersMiddleware.csrfHeader]
            if csrf == nil, request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true {
                csrf = try await AdminForm.fields(request, limit: backend.json.limit)["csrf"]
            }
            guard let csrf, access.isCSRF(csrf, for: session)
            else {
                context.logger.warning("admin API refused: missing or wrong CSRF token", metadata: ["ip": "\(client)"])
                throw Problem(.forbidden, detail: "X-CSRF-Token is missing or wrong.")
            }
        }
    }

    /// `task` as operators see it, with the live worker running it if it is in flight (from their heartbeats).
    func view(_ task: TaskRecord) async -> TaskView {
        var view = TaskView(task)
        if task.state == TaskState.inFlight.rawValue,
            let holder = (try? await backend.taskQueue.liveWorkers())?.first(where: { $0.holding.contains(task.id) })
        {
            view.heldBy = "\(holder.host) pid \(holder.pid) (worker \(holder.id.prefix(8)))"
        }
        return view
    }

    /// The `{key}` of a limits route (`user:ID`, `ip:ADDRESS`, `header:VALUE`, `global`), percent-decoded; a
    /// key no policy could have is a 404.
    func subject(_ context: EnvoyRequestContext) throws -> String {
        let raw = try context.parameters.require("key")
        let key = raw.removingPercentEncoding ?? raw
        guard RateLimitCheck.checks(subject: key, policies: backend.configuration.rateLimitPolicies) != nil else {
            throw Problem.notFound("No limits have the key \"\(key)\" (user:ID, ip:ADDRESS, header:VALUE or global).")
        }
        return key
    }

    /// A query's `limit`: 200 when absent, else an integer from 1 to 10,000 or a 400.
    static func limit(_ query: Hummingbird.Parameters) throws -> Int {
        guard let raw = query.get("limit") else { return 200 }
        guard let limit = Int(raw), (1...10_000).contains(limit) else {
            throw Problem(.badRequest, detail: "limit is an integer from 1 to 10000; got \"\(raw)\".")
        }
        return limit
    }

    /// The task state a query names (default `ready`), or a 400 listing the states.
    static func state(_ name: String?) throws -> TaskState {
        guard let state = TaskState(rawValue: name ?? "ready") else {
            throw Problem(
                .badRequest, detail: "state is one of \(TaskState.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        return state
    }

    /// The store's administration, or a 501 saying this store has none.
    func limitStore() throws -> any RateLimitAdministration {
        guard let store = backend.rateLimitStore as? any RateLimitAdministration else {
            throw Problem(.notImplemented, detail: "This rate-limit store cannot be inspected or reset.")
        }
        return store
    }

    /// The checks of `subject`, or a 400 naming the forms a subject takes.
    func checks(of subject: String) throws -> [RateLimitCheck] {
        guard let checks = RateLimitCheck.checks(subject: subject, policies: backend.configuration.rateLimitPolicies)
        else {
            throw Problem(
                .badRequest, detail: "A subject is user:ID, ip:ADDRESS, header:VALUE or global; got \"\(subject)\".")
        }
        return checks
    }

    /// Each policy's window for `subject` now (nothing charged).
    func limits(of subject: String) async throws -> [LimitUsage] {
        let checks = try checks(of: subject)
        let decision = try await limitStore().peek(checks)
        return decision.outcomes.map { LimitUsage($0) }
    }

    /// Empties `subject`'s windows everywhere; this instance forgets its refusals at once, the others within a
    /// second (`RateLimitResetWatcher`). Returns how many windows.
    func resetLimits(of subject: String, context: EnvoyRequestContext) async throws -> Int {
        let checks = try checks(of: subject)
        try await limitStore().reset(checks)
        for check in checks { backend.deniedKeys.forget(policy: check.policy.name, key: check.key) }
        context.logger.notice(
            "admin reset rate limits",
            metadata: ["subject": "\(checks.first?.key ?? subject)", "ip": "\(client(context))"])
        return checks.count
    }

    /// The keys refused most in the last hour by this instance.
    func mostRefused() -> [RefusedKey] {
        backend.deniedKeys.mostRefused(limit: 20).map { RefusedKey(policy: $0.policy, key: $0.key, refusals: $0.count) }
    }

    /// Everything the overview shows, read now.
    func overview() async throws -> AdminOverview {
        async let queues = backend.taskQueue.stats()
        async let workers = backend.taskQueue.liveWorkers()
        async let databaseUp = backend.database.ping()
        let redis = await backend.redisHealth().status
        let counters = AdminCounters(exposition: backend.metricsRegistry.emitToString())
        return AdminOverview(
            at: Date().timeIntervalSince1970, queues: try await queues, workers: (try? await workers) ?? [],
            database: await databaseUp ? "ok" : "down", redis: redis, tasksProcessed: counters.tasksProcessed,
            caches: counters.caches, rateLimits: counters.rateLimits)
    }

    /// Dead tasks matching `filter`, newest first (at most `filter.limit`).
    func dead(_ filter: DeadFilter) async throws -> [DeadTask] {
        try await backend.taskQueue.deadTasks(matching: filter)
    }

    /// Retries or deletes the form's task, or every dead task matching its filter.
    func act(on form: AdminForm, retry: Bool) async throws -> Int {
        try await act(
            ids: form.fields["id"].map { [$0] }, filter: form.fields["all"] == "1" ? form.filter : nil, retry: retry)
    }

    /// Retries or deletes `ids`, or those matching `filter`; neither is an error (nothing is done to all by default).
    func act(ids: [String]?, filter: DeadFilter?, retry: Bool) async throws -> Int {
        var targets = ids ?? []
        if let filter {
            targets += try await dead(DeadFilter(type: filter.type, error: filter.error, limit: 100_000)).map(\.id)
        }
        guard !targets.isEmpty else { return 0 }
        return retry
            ? try await backend.taskQueue.retryDead(ids: targets) : try await backend.taskQueue.deleteDead(ids: targets)
    }
}

extension TaskQueueAdministration {
    /// Dead tasks matching `filter`, newest first (at most `filter.limit`; a filter reads up to 100,000 to search).
    public func deadTasks(matching filter: DeadFilter) async throws -> [DeadTask] {
        let all = try await deadTasks(limit: filter.isEmpty ? filter.limit : 100_000)
        return Array(all.filter(filter.matches).prefix(filter.limit))
    }
}

extension Backend {
    /// Whether the client reached us over TLS, as a trusted proxy in front says (`X-Forwarded-Proto: https`).
    func forwardedOverTLS(_ request: Request, context: EnvoyRequestContext) -> Bool {
        guard let peer = context.remoteAddress?.ipAddress.flatMap(IPAddress.init),
            configuration.trustedProxies.contains(where: { $0.contains(peer) }),
            let proto = request.headers[HTTPField.Name("X-Forwarded-Proto")!]
        else { return false }
        return proto.lowercased() == "https"
    }
}

/// Which dead tasks: by type (exact) and by words in their errors.
public struct DeadFilter: Sendable, Equatable {
    /// The task type, exactly (nil: any).
    public var type: String?
    /// Words one of its failures contains, case-insensitively (nil: any).
    public var error: String?
    /// At most this many.
    public var limit = 200

    /// A filter; empty strings mean "any".
    public init(type: String? = nil, error: String? = nil, limit: Int = 200) {
        self.type = type.flatMap { $0.isEmpty ? nil : $0 }
        self.error = error.flatMap { $0.isEmpty ? nil : $0 }
        self.limit = limit
    }

    /// The filter a query names (`type`, `q` or `error`, `limit`); a bad `limit` is a 400.
    init(_ query: Hummingbird.Parameters) throws {
        self.init(
            type: query.get("type"), error: query.get("q") ?? query.get("error"), limit: try AdminConsole.limit(query))
    }

    /// Whether it lets every dead task through.
    public var isEmpty: Bool { type == nil && error == nil }

    /// Whether `task` passes.
    public func matches(_ task: DeadTask) -> Bool {
        (type == nil || task.type == type)
            && (error == nil || task.history.contains { $0.localizedCaseInsensitiveContains(error ?? "") })
    }
}

/// The body of `POST /admin/api/dead/retry` and `/delete`: ids, or `all` with a filter.
struct DeadAction: Decodable {
    var ids: [String]?
    var all: Bool?
    var type: String?
    var error: String?
}

/// A posted console form's fields.
struct AdminForm: Sendable {
    var fields: [String: String]

    /// The dead-letter filter the form carries.
    var filter: DeadFilter { DeadFilter(type: fields["type"], error: fields["error"]) }

    /// Where to go after the action: the task's page, else the filtered dead letters, with what was done.
    func back(done: String, deleted: Bool = false) -> String {
        if let id = fields["id"], fields["from"] == "task", !deleted { return "/admin/tasks/\(Self.escape(id))" }
        var query = ["done=\(Self.escape(done))"]
        if let type = filter.type { query.append("type=\(Self.escape(type))") }
        if let error = filter.error { query.append("error=\(Self.escape(error))") }
        return "/admin/dead?" + query.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? ""
    }

    /// The `application/x-www-form-urlencoded` fields of `request`'s body.
    static func fields(_ request: Request, limit: Int) async throws -> [String: String] {
        let body = try await JSONBody(limit: limit).bytes(of: request)
        var fields: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            if let name = parts.first { fields[decode(name)] = parts.count == 2 ? decode(parts[1]) : "" }
        }
        return fields
    }
}

/// Security headers on every console response: a strict Content-Security-Policy (only this server's own script
/// and style), no framing, no sniffing, no caching, no referrer.
struct AdminHeadersMiddleware: RouterMiddleware {
    typealias Context = EnvoyRequestContext
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    static let policy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var response = try await next(request, context)
        response.headers[HTTPField.Name("Content-Security-Policy")!] = Self.policy
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}

/// The overview, as the page and `GET /admin/api/overview` give it.
struct AdminOverview: Encodable, Sendable {
    /// When it was read, Unix seconds (the page turns counter deltas into rates).
    var at: Double
    var queues: [QueueStats]
    var workers: [WorkerHeartbeat]
    var database: String
    var redis: String
    /// This instance's `envoy_tasks_processed_total` by outcome.
    var tasksProcessed: [String: Double]
    /// This instance's cache requests by cache and result (`hit`, `miss`, `bypass`).
    var caches: [String: [String: Double]]
    /// This instance's rate-limit decisions by policy and decision.
    var rateLimits: [String: [String: Double]]
}

/// One policy's window for a subject, as the console shows it.
struct LimitUsage: Encodable, Sendable {
    /// The policy's name.
    var name: String
    var limit: Int
    var windowSeconds: Double
    var algorithm: String
    /// Whether a request now would be admitted by this policy.
    var allowed: Bool
    var remaining: Int
    /// Seconds until quota frees (see `RateLimitOutcome.resetAfter`).
    var resetSeconds: Double
    /// When quota frees, Unix seconds (as `X-RateLimit-Reset`).
    var reset: Int

    init(_ outcome: RateLimitOutcome, now: Date = Date()) {
        name = outcome.policy.name
        limit = outcome.policy.limit
        windowSeconds = outcome.policy.window
        algorithm = outcome.policy.algorithm == .gcra ? "gcra" : "sliding_log"
        allowed = outcome.allowed
        remaining = outcome.remaining
        resetSeconds = outcome.resetAfter
        reset = Int((now.timeIntervalSince1970 + outcome.resetAfter).rounded(.up))
    }
}

/// `GET /admin/api/limits/{key}`: each policy's window for the key.
struct LimitReport: Encodable, Sendable {
    var key: String
    var policies: [LimitUsage]
}

/// `DELETE /admin/api/limits/{key}`: how many windows were emptied.
struct LimitsReset: Encodable, Sendable {
    var key: String
    var reset: Int
}

/// A key this instance refused, with how often in the last hour.
struct RefusedKey: Encodable, Sendable {
    var policy: String
    var key: String
    var refusals: Int
}

/// A task as operators see it (the console, its API, `envoy queues show`): the payload redacted.
public struct TaskView: Encodable, Sendable {
    /// The task's id.
    public var id: String
    /// Its type.
    public var type: String
    /// Its queue.
    public var queue: String
    /// `ready`, `delayed`, `in_flight` or `dead`.
    public var state: String
    /// Runs so far.
    public var attempts: Int
    /// Runs allowed.
    public var maxAttempts: Int
    /// The payload, redacted (`Redaction.payload`).
    public var payload: String
    /// Every failure, oldest first.
    public var history: [String]
    /// Enqueued, Unix seconds.
    public var createdAt: Double
    /// While in flight: its lease's end, Unix seconds.
    public var leaseUntil: Double?
    /// When it died, Unix seconds.
    public var diedAt: Double?
    /// The live worker running it (host, pid, worker id), from the workers' heartbeats.
    public var heldBy: String?

    /// The view of `task`.
    public init(_ task: TaskRecord) {
        (id, type, queue, state, attempts, maxAttempts) =
            (task.id, task.type, task.queue, task.state, task.attempts, task.maxAttempts)
        (payload, history, createdAt, leaseUntil, diedAt) =
            (Redaction.payload(task.payload), task.history, task.createdAt, task.leaseUntil, task.diedAt)
    }
}

/// Counters read from this instance's Prometheus exposition.
struct AdminCounters {
    var tasksProcessed: [String: Double] = [:]
    var caches: [String: [String: Double]] = [:]
    var rateLimits: [String: [String: Double]] = [:]

    init(exposition: String) {
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard let brace = line.firstIndex(of: "{"), let close = line.firstIndex(of: "}"),
                let value = Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces))
            else { continue }
            let name = line[..<brace]
            var labels: [String: String] = [:]
            for pair in line[line.index(after: brace)..<close].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 {
                    labels[String(parts[0])] = parts[1].trimmingCharacters(in: .init(charactersIn: "\""))
                }
            }
            switch name {
            case "envoy_tasks_processed_total":
                if let outcome = labels["outcome"] { tasksProcessed[outcome, default: 0] += value }
            case "envoy_cache_requests_total":
                if let cache = labels["cache"], let result = labels["result"] {
                    caches[cache, default: [:]][result] = value
                }
            case "envoy_ratelimit_decisions_total":
                if let policy = labels["policy"], let decision = labels["decision"] {
                    rateLimits[policy, default: [:]][decision] = value
                }
            default: continue
            }
        }
    }
}

/// What the console never shows of a payload: secrets and personal data.
public enum Redaction {
    /// Keys whose values are withheld wherever they appear in a key (`user_password`, `api_token`).
    static let sensitiveParts = [
        "password", "secret", "token", "authorization", "apikey", "email", "phone", "address", "recipient", "cookie",
        "iban", "card",
    ]
    /// Keys whose values are withheld when they are the whole key (short words that occur inside harmless ones).
    static let sensitiveKeys: Set<String> = ["to", "cc", "bcc", "name", "html", "text", "body", "key", "ip"]

    static func isSensitive(_ key: String) -> Bool {
        let plain = key.lowercased().filter { $0 != "_" && $0 != "-" }
        return sensitiveKeys.contains(plain) || sensitiveParts.contains { plain.contains($0) }
    }

    /// `payload` as indented JSON with sensitive values and anything that looks like an email address withheld;
    /// a payload that is not JSON is not shown at all.
    public static func payload(_ payload: [UInt8]) -> String {
        guard let value = try? JSONSerialization.jsonObject(with: Data(payload), options: [.fragmentsAllowed]),
            let data = try? JSONSerialization.data(
                withJSONObject: redact(value, key: nil), options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed])
        else { return "(\(payload.count) bytes, not JSON: not shown)" }
        return String(decoding: data, as: UTF8.self)
    }

    static func redact(_ value: Any, key: String?) -> Any {
        let sensitive = key.map(isSensitive) ?? false
        switch value {
        case let object as [String: Any]:
            return object.reduce(into: [String: Any]()) { $0[$1.key] = redact($1.value, key: $1.key) }
        case let array as [Any]:
            return array.map { redact($0, key: key) }
        case let text as String:
            if sensitive { return "(redacted)" }
            return text.range(of: #"[^\s@]+@[^\s@]+\.[^\s@]+"#, options: .regularExpression) != nil
                ? "(redacted: an email address)" : text
        default:
            return sensitive ? "(redacted)" : value
        }
    }
}
