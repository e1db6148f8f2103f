import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The console's pages: server-rendered HTML, every value escaped, forms that work without JavaScript (the
/// overview's script only refreshes its tables).
enum AdminPages {
    /// `text` escaped for HTML text and attribute values.
    static func escape(_ text: String) -> String { HTML.escape(text) }

    /// A page: the layout around `body`; with `csrf`, the navigation and the sign-out form.
    static func page(_ title: String, _ body: String, csrf: String?, status: HTTPResponse.Status = .ok) -> Response {
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title)) · Envoy console</title>
            <link rel="stylesheet" href="/admin/assets/console.css"></head><body>
            <header><strong>Envoy console</strong>
            """
        if let csrf {
            html += """
                <nav><a href="/admin">Overview</a> <a href="/admin/dead">Dead letters</a>
                <a href="/admin/limits">Limits</a></nav>
                <form method="post" action="/admin/logout" class="inline">\(hidden("csrf", csrf))
                <button type="submit">Sign out</button></form>
                """
        }
        html += "</header><main><h1>\(escape(title))</h1>\n\(body)</main></body></html>\n"
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func hidden(_ name: String, _ value: String) -> String {
        "<input type=\"hidden\" name=\"\(escape(name))\" value=\"\(escape(value))\">"
    }

    /// A POST form of one button, carrying the CSRF token and `fields`.
    static func button(_ label: String, action: String, csrf: String, fields: [(String, String)], danger: Bool = false)
        -> String
    {
        "<form method=\"post\" action=\"\(escape(action))\" class=\"inline\">\(hidden("csrf", csrf))"
            + fields.map { hidden($0.0, $0.1) }.joined()
            + "<button type=\"submit\"\(danger ? " class=\"danger\"" : "")>\(escape(label))</button></form>"
    }

    static func time(_ seconds: Double?) -> String {
        guard let seconds, seconds > 0 else { return "—" }
        return Date(timeIntervalSince1970: seconds).formatted(.iso8601)
    }

    /// The sign-in page (the only one without a session).
    static func signIn(error: String?) -> Response {
        let message = error.map { "<p class=\"error\" id=\"error\">Sign-in refused: \(escape($0)).</p>" } ?? ""
        return page(
            "Sign in",
            """
            \(message)
            <form method="post" action="/admin/login">
            <label for="token">Admin token</label>
            <input type="password" id="token" name="token" autocomplete="current-password" required>
            <button type="submit" id="sign-in">Sign in</button></form>
            """, csrf: nil, status: error == nil ? .ok : .unauthorized)
    }

    /// The overview: health, queues, workers, caches, limits; refreshed by the script every 2 s.
    static func overview(_ overview: AdminOverview, csrf: String) -> Response {
        var body = """
            <p>Database <b id="database">\(escape(overview.database))</b> · Redis <b id="redis">\(escape(overview.redis))</b>
            · <span id="updated" data-at="\(overview.at)">read \(escape(time(overview.at)))</span></p>
            <h2>Queues</h2><div class="scroll"><table id="queues"><thead><tr><th>queue</th><th>ready</th><th>delayed</th>
            <th>in flight</th><th>dead</th><th>oldest ready s</th></tr></thead><tbody>
            """
        for queue in overview.queues {
            let link = "/admin/queues/\(AdminForm.escape(queue.queue))"
            body +=
                "<tr data-queue=\"\(escape(queue.queue))\"><td><a href=\"\(escape(link))\">\(escape(queue.queue))</a></td>"
            body += "<td data-field=\"ready\">\(queue.ready)</td><td data-field=\"delayed\">\(queue.delayed)</td>"
            body += "<td data-field=\"inFlight\">\(queue.inFlight)</td><td data-field=\"dead\">\(queue.dead)</td>"
            body += "<td>\(String(format: "%.1f", queue.oldestReadyAge))</td></tr>\n"
        }
        body += """
            </tbody></table></div>
            <p>Tasks done by the live workers: <span id="tasks-done">\(overview.workers.map(\.tasksDone).reduce(0, +))</span>,
            <span id="tasks-rate">—</span> a second (from their heartbeats, every 2 s).</p>
            <h2>Workers</h2><div class="scroll"><table id="workers"><thead><tr><th>host</th><th>pid</th>
            <th>lanes busy</th><th>tasks done</th><th>queues</th><th>claiming</th></tr></thead><tbody>
            """
        for worker in overview.workers {
            body +=
                "<tr><td>\(escape(worker.host))</td><td>\(worker.pid)</td><td>\(worker.lanesBusy)/\(worker.lanes)</td>"
            body +=
                "<td>\(worker.tasksDone)</td><td>\(escape(worker.queues.isEmpty ? "all" : worker.queues.joined(separator: ", ")))</td>"
            body += "<td>\(worker.claiming ? "yes" : "no")</td></tr>\n"
        }
        body += "</tbody></table></div><h2>Caches</h2><div class=\"scroll\"><table id=\"caches\"><thead><tr>"
        body += "<th>cache</th><th>hits</th><th>misses</th><th>bypass</th><th>hit ratio</th></tr></thead><tbody>"
        for (cache, results) in overview.caches.sorted(by: { $0.key < $1.key }) {
            let (hit, miss, bypass) = (results["hit"] ?? 0, results["miss"] ?? 0, results["bypass"] ?? 0)
            let ratio = hit + miss + bypass > 0 ? String(format: "%.0f %%", hit / (hit + miss + bypass) * 100) : "—"
            body += "<tr><td>\(escape(cache))</td><td>\(Int(hit))</td><td>\(Int(miss))</td><td>\(Int(bypass))</td>"
            body += "<td>\(ratio)</td></tr>\n"
        }
        body += "</tbody></table></div><h2>Rate limits</h2><div class=\"scroll\"><table id=\"limits\"><thead><tr>"
        body += "<th>policy</th><th>admitted</th><th>rejected</th><th>shadow rejected</th></tr></thead><tbody>"
        for (policy, decisions) in overview.rateLimits.sorted(by: { $0.key < $1.key }) {
            body += "<tr data-policy=\"\(escape(policy))\"><td>\(escape(policy))</td>"
            for decision in ["admitted", "rejected", "shadow_rejected"] {
                body += "<td data-field=\"\(decision)\">\(Int(decisions[decision] ?? 0))</td>"
            }
            body += "</tr>\n"
        }
        body += "</tbody></table></div>\n<script src=\"/admin/assets/console.js\"></script>"
        return page("Overview", body, csrf: csrf)
    }

    /// Dead letters matching `filter`, each with its retry and delete buttons, and both for all that match.
    static func dead(_ tasks: [DeadTask], filter: DeadFilter, csrf: String, done: String? = nil) -> Response {
        let scope = [("type", filter.type ?? ""), ("error", filter.error ?? "")]
        var body = """
            <form method="get" action="/admin/dead" class="filter">
            <label for="type">type</label> <input id="type" name="type" value="\(escape(filter.type ?? ""))">
            <label for="error">error contains</label> <input id="error" name="error" value="\(escape(filter.error ?? ""))">
            <button type="submit" id="search">Search</button></form>
            \(done.map { "<p class=\"done\" id=\"done\">Done: \(escape($0)).</p>" } ?? "")
            <p><span id="count">\(tasks.count)</span> dead task(s)\(filter.isEmpty ? "" : " matching").
            """
        if !tasks.isEmpty {
            body +=
                " "
                + button(
                    "Retry all \(tasks.count)", action: "/admin/dead/retry", csrf: csrf, fields: scope + [("all", "1")])
            body +=
                " "
                + button(
                    "Delete all \(tasks.count)", action: "/admin/dead/delete", csrf: csrf,
                    fields: scope + [("all", "1")], danger: true)
        }
        body += "</p><div class=\"scroll\"><table id=\"dead\"><thead><tr><th>task</th><th>type</th><th>queue</th>"
        body += "<th>attempts</th><th>last error</th><th>died</th><th></th></tr></thead><tbody>\n"
        for task in tasks {
            body += "<tr data-task=\"\(escape(task.id))\"><td><a href=\"/admin/tasks/\(escape(task.id))\">"
            body +=
                "\(escape(String(task.id.prefix(8))))</a></td><td>\(escape(task.type))</td><td>\(escape(task.queue))</td>"
            body +=
                "<td>\(task.attempts)</td><td>\(escape(String(task.reason.prefix(160))))</td><td>\(escape(time(task.diedAt)))</td><td>"
            // One form, two buttons: Delete posts the same fields elsewhere (a row's weight halved).
            body += "<form method=\"post\" action=\"/admin/dead/retry\" class=\"inline\">\(hidden("csrf", csrf))"
            body += (scope + [("id", task.id)]).map { hidden($0.0, $0.1) }.joined()
            body += "<button type=\"submit\">Retry</button>"
            body += "<button type=\"submit\" formaction=\"/admin/dead/delete\" class=\"danger\">Delete</button></form>"
            body += "</td></tr>\n"
        }
        body += "</tbody></table></div>"
        return page("Dead letters", body, csrf: csrf)
    }

    /// A queue's tasks in one state, each linking to its page.
    static func queue(_ queue: String, state: TaskState, tasks: [TaskRecord], csrf: String) -> Response {
        var body = "<nav class=\"states\">"
        for other in TaskState.allCases {
            let link = "/admin/queues/\(AdminForm.escape(queue))?state=\(other.rawValue)"
            body += other == state ? " <b>\(other.rawValue)</b>" : " <a href=\"\(escape(link))\">\(other.rawValue)</a>"
        }
        body +=
            "</nav><p><span id=\"count\">\(tasks.count)</span> task(s)\(tasks.count == 200 ? " (the first 200)" : "").</p>"
        body += "<div class=\"scroll\"><table id=\"tasks\"><thead><tr><th>task</th><th>type</th><th>attempts</th>"
        body += "<th>enqueued</th><th>lease until</th><th>last error</th></tr></thead><tbody>\n"
        for task in tasks {
            body += "<tr data-task=\"\(escape(task.id))\"><td><a href=\"/admin/tasks/\(escape(task.id))\">"
            body += "\(escape(String(task.id.prefix(8))))</a></td><td>\(escape(task.type))</td>"
            body += "<td>\(task.attempts) of \(task.maxAttempts)</td><td>\(escape(time(task.createdAt)))</td>"
            body +=
                "<td>\(escape(time(task.leaseUntil)))</td><td>\(escape(String((task.history.last ?? "").prefix(120))))</td></tr>\n"
        }
        body += "</tbody></table></div>"
        return page("Queue \(queue): \(state.rawValue)", body, csrf: csrf)
    }

    /// One task: where it is, its payload (redacted), every failure; a dead one can be retried or deleted.
    static func task(_ shown: TaskView, csrf: String) -> Response {
        var body = "<dl id=\"task\">"
        for (name, value) in [
            ("id", shown.id), ("type", shown.type), ("queue", shown.queue), ("state", shown.state),
            ("attempts", "\(shown.attempts) of \(shown.maxAttempts)"), ("enqueued", time(shown.createdAt)),
            ("lease until", time(shown.leaseUntil)), ("held by", shown.heldBy ?? "—"), ("died", time(shown.diedAt)),
        ] {
            body += "<dt>\(escape(name))</dt><dd data-field=\"\(escape(name))\">\(escape(value))</dd>"
        }
        body +=
            "</dl><h2>Payload</h2><pre id=\"payload\">\(escape(shown.payload))</pre><h2>Failures</h2><ol id=\"history\">"
        body += shown.history.map { "<li>\(escape($0))</li>" }.joined()
        body += "</ol>"
        if shown.state == TaskState.dead.rawValue {
            body += button(
                "Retry", action: "/admin/dead/retry", csrf: csrf, fields: [("id", shown.id), ("from", "task")])
            body += button(
                "Delete", action: "/admin/dead/delete", csrf: csrf, fields: [("id", shown.id), ("from", "task")],
                danger: true)
        }
        return page("Task \(shown.id.prefix(8))", body, csrf: csrf)
    }

    /// A subject's limits (looked up, with a reset), and the keys refused most in the last hour here.
    static func limits(subject: String?, usage: [LimitUsage]?, refused: [RefusedKey], csrf: String, done: String?)
        -> Response
    {
        var body = """
            <form method="get" action="/admin/limits" class="filter">
            <label for="subject">subject</label>
            <input id="subject" name="subject" value="\(escape(subject ?? ""))" placeholder="ip:203.0.113.7, user:ID, header:VALUE, global">
            <button type="submit" id="look-up">Look up</button></form>
            \(done.map { "<p class=\"done\" id=\"done\">Done: \(escape($0)).</p>" } ?? "")
            """
        if let subject, let usage {
            body += "<h2>\(escape(subject))</h2><div class=\"scroll\"><table id=\"usage\"><thead><tr><th>policy</th>"
            body +=
                "<th>limit</th><th>window s</th><th>remaining</th><th>frees in s</th><th>now</th></tr></thead><tbody>"
            for row in usage {
                body += "<tr data-policy=\"\(escape(row.name))\"><td>\(escape(row.name))</td><td>\(row.limit)</td>"
                body += "<td>\(Int(row.windowSeconds))</td><td data-field=\"remaining\">\(row.remaining)</td>"
                body += "<td>\(String(format: "%.0f", row.resetSeconds))</td>"
                body += "<td data-field=\"allowed\">\(row.allowed ? "admitted" : "refused")</td></tr>\n"
            }
            body += "</tbody></table></div>"
            if usage.isEmpty {
                body += "<p>No policy counts by this kind of key.</p>"
            } else {
                body +=
                    "<p>"
                    + button(
                        "Reset \(subject)", action: "/admin/limits/reset", csrf: csrf, fields: [("subject", subject)],
                        danger: true)
                body += " (every instance forgets its refusals of it within a second)</p>"
            }
        }
        body +=
            "<h2>Refused most in the last hour (this instance)</h2><div class=\"scroll\"><table id=\"refused\"><thead>"
        body += "<tr><th>key</th><th>policy</th><th>refusals</th></tr></thead><tbody>"
        for row in refused {
            let lookable = !row.key.hasPrefix("header:")
            let key =
                lookable
                ? "<a href=\"/admin/limits?subject=\(escape(AdminForm.escape(row.key)))\">\(escape(row.key))</a>"
                : escape(row.key)
            body += "<tr><td>\(key)</td><td>\(escape(row.policy))</td><td>\(row.refusals)</td></tr>\n"
        }
        body += "</tbody></table></div>"
        return page("Rate limits", body, csrf: csrf)
    }

    /// 404 as a page.
    static func notFound(_ detail: String) -> Response {
        page(
            "Not found", "<p>\(escape(detail))</p><p><a href=\"/admin\">Overview</a></p>", csrf: nil, status: .notFound)
    }

    /// 303 to `location`; with `session`, setting the session cookie; with `clearingSession`, removing it.
    static func redirect(
        _ location: String, session: String? = nil, secure: Bool = false, clearingSession: Bool = false
    )
        -> Response
    {
        var headers: HTTPFields = [.location: location]
        let attributes = "; Path=/admin; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
        if let session {
            headers[.setCookie] =
                "\(AdminAccess.cookie)=\(session)\(attributes); Max-Age=\(Int(AdminAccess.sessionLifetime))"
        } else if clearingSession {
            headers[.setCookie] = "\(AdminAccess.cookie)=\(attributes); Max-Age=0"
        }
        return Response(status: .seeOther, headers: headers)
    }

    /// A static asset of the console.
    static func asset(_ text: String, type: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "\(type); charset=utf-8", .cacheControl: "max-age=300"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
