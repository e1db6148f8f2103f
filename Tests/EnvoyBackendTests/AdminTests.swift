import EnvoyFramework
import EnvoyPlugins
import EnvoyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ServiceLifecycle
import Testing

@testable import EnvoyBackend

/// The operators' console and its JSON API, over HTTP: protection first, then what operators do.
@Suite("The admin console: off without a token, signed sessions, CSRF, strict headers, dead letters by hand")
struct AdminTests {
    static let token = "an-operators-token-of-at-least-32-bytes!"
    let csp = HTTPField.Name("Content-Security-Policy")!
    let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    func stack() throws -> TestStack { try TestStack { $0.adminToken = Self.token } }

    /// Signs in through the form and returns the session cookie (`envoy_admin=…`).
    func signIn(_ client: some TestClientProtocol, token: String = Self.token) async throws -> (
        status: HTTPResponse.Status, location: String?, cookie: String?
    ) {
        let response = try await client.execute(
            uri: "/admin/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(
                string: "token=" + (token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")))
        let cookie = response.headers[.setCookie]?.split(separator: ";").first.map(String.init)
        return (response.status, response.headers[.location], cookie)
    }

    /// The CSRF token a page of the session carries.
    func csrf(_ client: some TestClientProtocol, cookie: String) async throws -> String {
        let page = try await client.execute(uri: "/admin/dead", method: .get, headers: [.cookie: cookie]).text
        let marker = #"name="csrf" value=""#
        let start = try #require(page.range(of: marker)?.upperBound)
        return String(page[start...].prefix { $0 != "\"" })
    }

    /// A dead task whose payload holds a password and an email address.
    func deadTask(_ backend: Backend, type: String = "send_report", error: String = "SMTP said 550") async throws
        -> String
    {
        let payload =
            #"{"password":"hunter2-secret","recipient":"ann@example.com","note":"mail ann@example.com","count":3}"#
        let queue = backend.taskQueue
        _ = try await queue.enqueue(NewTask(type: type, queue: "reports", payload: Array(payload.utf8), maxAttempts: 1))
        let claimed = try #require(try await queue.claim(queues: ["reports"], lease: .seconds(30)))
        try await queue.bury(claimed, error: error)
        return claimed.id
    }

    @Test("without ADMIN_TOKEN there is no console and no admin API")
    func offByDefault() async throws {
        let app = try await TestStack().backend().application()
        try await app.test(.router) { client in
            let page = try await client.execute(uri: "/admin", method: .get)
            let api = try await client.execute(uri: "/admin/api/overview", method: .get)
            #expect(page.status == .notFound && api.status == .notFound)
        }
        #expect(throws: ConfigurationError.self) {
            try AppConfiguration(environment: ["ADMIN_TOKEN": "too-short"])
        }
    }

    @Test("sign-in: a wrong token is refused and counted; the right one sets an HttpOnly, SameSite=Strict session")
    func signInAndSessions() async throws {
        let app = try await stack().backend().application()
        try await app.test(.router) { client in
            // Pages need a session.
            let anonymous = try await client.execute(uri: "/admin", method: .get)
            #expect(anonymous.status == .seeOther && anonymous.headers[.location] == "/admin/login")
            let wrong = try await signIn(client, token: "not-the-token-but-just-as-long-as-it!!!")
            #expect(wrong.location?.hasPrefix("/admin/login?error=wrong") == true && wrong.cookie == nil)
            let right = try await signIn(client)
            #expect(right.status == .seeOther && right.location == "/admin")
            let cookie = try #require(right.cookie)
            let overview = try await client.execute(uri: "/admin", method: .get, headers: [.cookie: cookie])
            #expect(overview.status == .ok && overview.text.contains("<h1>Overview</h1>"))
            #expect(!overview.text.contains(Self.token))
            // Strict headers on every console response.
            let policy = try #require(overview.headers[csp])
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"))
            #expect(overview.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
            let raw = try await client.execute(
                uri: "/admin/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "token=\(Self.token)"))
            let attributes = try #require(raw.headers[.setCookie])
            #expect(attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"))
            #expect(attributes.contains("Path=/admin") && !attributes.contains("Secure"), "plain HTTP: not Secure")
            // A forged or tampered session is no session.
            for forged in ["envoy_admin=9999999999.deadbeef", cookie + "0"] {
                let page = try await client.execute(uri: "/admin", method: .get, headers: [.cookie: forged])
                #expect(page.status == .seeOther)
            }
        }
    }

    @Test("ten wrong tokens from one address, and even the right one is refused from there for a while")
    func wrongTokensLimited() async throws {
        let app = try await stack().backend().application()
        try await app.test(.router) { client in
            for _ in 0..<10 { _ = try await signIn(client, token: "guess-guess-guess-guess-guess-guess!!") }
            let blocked = try await signIn(client)
            #expect(blocked.cookie == nil && blocked.location?.contains("too%20many") == true)
            let api = try await client.execute(
                uri: "/admin/api/overview", method: .get, headers: [.authorization: "Bearer \(Self.token)"])
            #expect(api.status == .tooManyRequests)
        }
    }

    @Test("the API: Bearer token, or the session with its CSRF token on POST; 401 and 403 otherwise")
    func apiAccess() async throws {
        let backend = try await stack().backend()
        let id = try await deadTask(backend)
        try await backend.application().test(.router) { client in
            let bearer: HTTPFields = [.authorization: "Bearer \(Self.token)"]
            let overview = try await client.execute(uri: "/admin/api/overview", method: .get, headers: bearer)
            #expect(overview.status == .ok)
            let json = try JSONSerialization.jsonObject(with: Data(overview.body.readableBytesView)) as? [String: Any]
            let queues = json?["queues"] as? [[String: Any]]
            #expect(queues?.first { $0["queue"] as? String == "reports" }?["dead"] as? Int == 1, "\(overview.text)")
            let wrong = try await client.execute(
                uri: "/admin/api/overview", method: .get, headers: [.authorization: "Bearer nope"])
            #expect(wrong.status == .unauthorized)
            #expect(try await client.execute(uri: "/admin/api/overview", method: .get).status == .unauthorized)

            let cookie = try #require(try await signIn(client).cookie)
            let body = ByteBuffer(string: #"{"ids":["\#(id)"]}"#)
            let noCSRF = try await client.execute(
                uri: "/admin/api/dead/retry", method: .post,
                headers: [.cookie: cookie, .contentType: "application/json"],
                body: body)
            #expect(noCSRF.status == .forbidden)
            let form = try await client.execute(
                uri: "/admin/dead/retry", method: .post,
                headers: [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "id=\(id)"))
            #expect(form.status == .forbidden, "a console form without its CSRF token")
            #expect(try await backend.taskQueue.task(id: id)?.state == "dead", "nothing was done")
            let csrf = try await csrf(client, cookie: cookie)
            let retried = try await client.execute(
                uri: "/admin/api/dead/retry", method: .post,
                headers: [.cookie: cookie, .contentType: "application/json", csrfHeader: csrf], body: body)
            #expect(retried.status == .ok && retried.text.contains(#""retried":1"#), "\(retried.text)")
            // Back in its queue (the in-process worker may already hold it, or have handed it back: no handler).
            let state = try await backend.taskQueue.task(id: id)?.state
            #expect(["ready", "in_flight", "delayed"].contains(state), "\(String(describing: state))")
        }
    }

    @Test("the API's shapes: queues, dead letters by type and words, one retried and one deleted by id, workers")
    func apiShapes() async throws {
        let backend = try await stack().backend()
        let first = try await deadTask(backend, error: "SMTP said 550 mailbox unavailable")
        let second = try await deadTask(backend, type: "sync_crm", error: "CRM timeout after 30 s")
        try await backend.application(inProcessWorker: false).test(.router) { client in
            let bearer: HTTPFields = [.authorization: "Bearer \(Self.token)"]
            func json(_ uri: String, _ method: HTTPRequest.Method = .get) async throws -> (HTTPResponse.Status, Any?) {
                let response = try await client.execute(uri: uri, method: method, headers: bearer)
                return (response.status, try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)))
            }
            let queues = try await json("/admin/api/queues").1 as? [[String: Any]]
            let reports = try #require(queues?.first { $0["queue"] as? String == "reports" })
            #expect(
                Set(reports.keys) == ["queue", "ready", "delayed", "in_flight", "dead", "oldest_age_seconds"]
                    && reports["dead"] as? Int == 2, "\(reports)")
            let found = try await json("/admin/api/dead?q=timeout").1 as? [[String: Any]]
            #expect(found?.map { $0["id"] as? String } == [second], "\(String(describing: found))")
            #expect(
                Set(found?.first?.keys ?? [:].keys)
                    == ["id", "type", "queue", "attempts", "reason", "history", "died_at"])
            #expect((try await json("/admin/api/dead?type=sync_crm").1 as? [Any])?.count == 1)
            #expect(try await json("/admin/api/dead/\(first)/retry", .post).0 == .ok)
            #expect(try await json("/admin/api/dead/\(first)/retry", .post).0 == .notFound, "no longer dead")
            #expect(try await json("/admin/api/dead/\(second)", .delete).0 == .ok)
            #expect(try await json("/admin/api/dead/\(second)", .delete).0 == .notFound)
            #expect(try await backend.taskQueue.task(id: first)?.state == "ready")
            #expect(try await backend.taskQueue.task(id: second) == nil)
            #expect(try await json("/admin/api/workers").1 is [Any])
        }
    }

    @Test("any POST under /admin/ without a CSRF token is 403, a path that does not exist too")
    func unknownPostsRefused() async throws {
        try await stack().backend().application().test(.router) { client in
            let cookie = try #require(try await signIn(client).cookie)
            for uri in ["/admin/anything", "/admin/dead/explode", "/admin/api/nothing/here"] {
                let anonymous = try await client.execute(uri: uri, method: .post)
                #expect(anonymous.status == .forbidden, "\(uri)")
                let noCSRF = try await client.execute(uri: uri, method: .post, headers: [.cookie: cookie])
                #expect(noCSRF.status == .forbidden, "\(uri)")
                let csrf = try await csrf(client, cookie: cookie)
                let known = try await client.execute(
                    uri: uri, method: .post, headers: [.cookie: cookie, csrfHeader: csrf])
                #expect(known.status == .notFound, "\(uri): signed in, with its token")
            }
            let bearer = try await client.execute(
                uri: "/admin/nowhere", method: .post, headers: [.authorization: "Bearer \(Self.token)"])
            #expect(bearer.status == .notFound)
        }
    }

    @Test("a dead task's page: every failure, the payload without its password or email; retry and delete by form")
    func deadLetters() async throws {
        let backend = try await stack().backend()
        let first = try await deadTask(backend, error: "SMTP said 550 mailbox unavailable")
        let second = try await deadTask(backend, type: "sync_crm", error: "CRM timeout after 30 s")
        try await backend.application().test(.router) { client in
            let cookie = try #require(try await signIn(client).cookie)
            let csrf = try await csrf(client, cookie: cookie)
            let page = try await client.execute(uri: "/admin/tasks/\(first)", method: .get, headers: [.cookie: cookie])
            #expect(page.status == .ok && page.text.contains("SMTP said 550 mailbox unavailable"))
            #expect(page.text.contains(#"<dd data-field="state">dead</dd>"#))
            #expect(!page.text.contains("hunter2") && !page.text.contains("ann@example.com"), "\(page.text)")
            #expect(page.text.contains("&quot;count&quot; : 3"), "the rest of the payload is shown")
            // Search by type and by error words.
            let byError = try await client.execute(
                uri: "/admin/dead?error=timeout", method: .get, headers: [.cookie: cookie])
            #expect(byError.text.contains(second) && !byError.text.contains(first))
            let api = try await client.execute(
                uri: "/admin/api/dead?type=send_report", method: .get,
                headers: [.authorization: "Bearer \(Self.token)"])
            #expect(api.text.contains(first) && !api.text.contains(second))
            // Delete all matching "timeout" (one), then retry the other from its page.
            let form: HTTPFields = [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"]
            let deleted = try await client.execute(
                uri: "/admin/dead/delete", method: .post, headers: form,
                body: ByteBuffer(string: "csrf=\(csrf)&all=1&error=timeout"))
            #expect(deleted.status == .seeOther && deleted.headers[.location]?.contains("done=deleted%201") == true)
            #expect(try await backend.taskQueue.task(id: second) == nil)
            let retried = try await client.execute(
                uri: "/admin/dead/retry", method: .post, headers: form,
                body: ByteBuffer(string: "csrf=\(csrf)&id=\(first)&from=task"))
            #expect(retried.headers[.location] == "/admin/tasks/\(first)")
            let state = try await backend.taskQueue.task(id: first)?.state
            #expect(["ready", "in_flight", "delayed"].contains(state), "\(String(describing: state))")
            // Signing out ends the cookie; the token never shows in any page.
            let out = try await client.execute(
                uri: "/admin/logout", method: .post, headers: form, body: ByteBuffer(string: "csrf=\(csrf)"))
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
            for uri in ["/admin", "/admin/dead", "/admin/tasks/\(first)", "/admin/assets/console.js"] {
                let body = try await client.execute(uri: uri, method: .get, headers: [.cookie: cookie]).text
                #expect(!body.contains(Self.token))
            }
        }
    }

    @Test("queues → tasks → one task: each state listed, in order, linking to the task's page")
    func queueTasks() async throws {
        let backend = try await stack().backend()
        let queue = backend.taskQueue
        for n in 0..<3 {
            _ = try await queue.enqueue(
                NewTask(type: "t\(n)", queue: "batch", payload: Array("{}".utf8), maxAttempts: 3))
        }
        let held = try #require(try await queue.claim(queues: ["batch"], lease: .seconds(60)))
        try await backend.application(inProcessWorker: false).test(.router) { client in
            let cookie = try #require(try await signIn(client).cookie)
            let overview = try await client.execute(uri: "/admin", method: .get, headers: [.cookie: cookie]).text
            #expect(overview.contains(#"<a href="/admin/queues/batch">batch</a>"#))
            let ready = try await client.execute(uri: "/admin/queues/batch", method: .get, headers: [.cookie: cookie])
            #expect(
                ready.text.contains(#"<span id="count">2</span>"#) && !ready.text.contains(held.id), "\(ready.text)")
            let flying = try await client.execute(
                uri: "/admin/queues/batch?state=in_flight", method: .get, headers: [.cookie: cookie]
            ).text
            #expect(flying.contains(#"<span id="count">1</span>"#) && flying.contains("/admin/tasks/\(held.id)"))
            let api = try await client.execute(
                uri: "/admin/api/queues/batch/tasks?state=ready", method: .get,
                headers: [.authorization: "Bearer \(Self.token)"])
            let listed = try JSONSerialization.jsonObject(with: Data(api.body.readableBytesView)) as? [[String: Any]]
            #expect(listed?.compactMap { $0["type"] as? String } == ["t1", "t2"], "oldest first: \(api.text)")
            let bad = try await client.execute(
                uri: "/admin/api/queues/batch/tasks?state=lost", method: .get,
                headers: [.authorization: "Bearer \(Self.token)"])
            #expect(bad.status == .badRequest)
        }
    }

    /// A task that runs until its worker shuts down.
    struct Hold: TaskHandler {
        struct Payload: Codable, Sendable { var n: Int }
        static let taskType = "hold"
        static let queue = "holds"
        func handle(_ payload: Payload, context: TaskContext) async throws {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(600)) }
        }
    }

    @Test("a task in flight names the live worker holding it (host, pid), from the workers' heartbeats")
    func heldBy() async throws {
        var registering = try await stack().backend()
        registering.register(Hold())
        let backend = registering
        try await backend.taskQueue.enqueue(Hold.self, .init(n: 1))
        try await backend.application(inProcessWorker: true).test(.router) { client in
            let cookie = try #require(try await signIn(client).cookie)
            let held = await eventually(timeout: .seconds(15)) {
                guard let id = try? await backend.taskQueue.tasks(queue: "holds", state: .inFlight, limit: 1).first?.id,
                    let page = try? await client.execute(
                        uri: "/admin/tasks/\(id)", method: .get, headers: [.cookie: cookie])
                else { return false }
                return page.text.contains("pid \(ProcessInfo.processInfo.processIdentifier) (worker ")
            }
            #expect(held, "the task's page names its holder")
        }
    }

    @Test("a limited address looked up and reset: admitted again at once here, and within seconds on another instance")
    func limitsLookUpAndReset() async throws {
        let prefix = SharedRedis.prefix()
        @Sendable func make() async throws -> Backend {
            try await TestStack {
                $0.adminToken = Self.token
                $0.redis = try RedisEndpoint(url: SharedRedis.url)
                $0.redisKeyPrefix = prefix
                $0.rateLimitPolicies = [
                    .init(
                        name: "login", limit: 2, window: 3600, key: .clientIP,
                        match: .init(method: "POST", route: "/v1/auth/login"))
                ]
            }.backend()
        }
        let login = ByteBuffer(string: #"{"email":"nobody@example.com","password":"wrong horse battery"}"#)
        @Sendable func attempt(_ client: some TestClientProtocol) async throws -> HTTPResponse.Status {
            try await client.execute(
                uri: "/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: login
            ).status
        }
        let (first, second) = (try await make(), try await make())
        try await first.application().test(.ahc(.http)) { a in
            try await second.application().test(.ahc(.http)) { b in
                #expect(try await attempt(a) == .unauthorized)
                #expect(try await attempt(a) == .unauthorized)
                #expect(try await attempt(a) == .tooManyRequests)
                #expect(try await attempt(b) == .tooManyRequests, "counted across instances; B remembers the refusal")
                // (This client follows redirects, so the session is made as a sign-in would make it.)
                let cookie = "\(AdminAccess.cookie)=\(AdminAccess(token: Self.token).newSession())"
                let page = try await a.execute(
                    uri: "/admin/limits?subject=ip:127.0.0.1", method: .get, headers: [.cookie: cookie]
                ).text
                #expect(page.contains(#"<td data-field="remaining">0</td>"#) && page.contains(">refused<"), "\(page)")
                #expect(page.contains(#"href="/admin/limits?subject=ip%3A127.0.0.1">ip:127.0.0.1</a>"#), "most refused")
                let overview = try await a.execute(uri: "/admin", method: .get, headers: [.cookie: cookie]).text
                let decisions =
                    #"<tr data-policy="login"><td>login</td><td data-field="admitted">2</td>"#
                    + #"<td data-field="rejected">1</td>"#
                #expect(overview.contains(decisions), "this instance's decisions: \(overview)")
                let bearer: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/json"]
                let api = try await a.execute(uri: "/admin/api/limits/ip:127.0.0.1", method: .get, headers: bearer)
                let report = try JSONSerialization.jsonObject(with: Data(api.body.readableBytesView)) as? [String: Any]
                let login = (report?["policies"] as? [[String: Any]])?.first { $0["name"] as? String == "login" }
                #expect(report?["key"] as? String == "ip:127.0.0.1", "\(api.text)")
                #expect(login?["allowed"] as? Bool == false && login?["remaining"] as? Int == 0, "\(api.text)")
                let resetAt = try #require(login?["reset"] as? Int, "reset, Unix seconds: \(api.text)")
                #expect(abs(Double(resetAt) - Date().timeIntervalSince1970 - 3600) < 120, "\(api.text)")
                let bad = try await a.execute(uri: "/admin/api/limits/nonsense", method: .get, headers: bearer)
                #expect(bad.status == .notFound, "no limits could have this key")
                let reset = try await a.execute(uri: "/admin/api/limits/ip:127.0.0.1", method: .delete, headers: bearer)
                #expect(reset.status == .ok && reset.text.contains(#""reset":1"#), "\(reset.text)")
                #expect(try await attempt(a) == .unauthorized, "admitted again here at once")
                let forgotten = await eventually(timeout: .seconds(5)) { (try? await attempt(b)) == .unauthorized }
                #expect(forgotten, "the other instance forgot its refusal")
            }
        }
    }

    @Test("redaction keeps harmless keys and withholds secrets and personal data wherever they are")
    func redaction() throws {
        let payload = #"{"to":["a@b.co"],"subject":"Hi","total":3,"api_token":"t","nested":{"user_email":"x","id":7}}"#
        let shown = Redaction.payload(Array(payload.utf8))
        #expect(
            shown.contains("\"subject\" : \"Hi\"") && shown.contains("\"total\" : 3") && shown.contains("\"id\" : 7"))
        #expect(!shown.contains("a@b.co") && !shown.contains("\"t\"") && !shown.contains("\"x\""))
        #expect(Redaction.payload(Array("not json".utf8)) == "(8 bytes, not JSON: not shown)")
    }
}
