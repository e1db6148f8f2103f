import EnvoyFramework
import Foundation
import HTTPTypes

/// The console's pages and the admin API, as the OpenAPI document describes them (only with `ADMIN_TOKEN`).
extension Backend {
    static let adminAccess = ["adminToken", "adminSession"]
    static let adminRefusals: [APIResponse] = [
        .problem(401, "No admin token or session, or a wrong token (counted)."),
        .problem(429, "Too many wrong admin tokens from this address; wait 15 minutes."),
    ]
    static let adminWriteRefusals =
        adminRefusals + [.problem(403, "A session without its CSRF token (`X-CSRF-Token`).")]
    static let page = APIResponse(200, "The page.", content: ("text/html", ["type": "string"]))
    static let toLogin = redirect("No session: to `/admin/login`.")
    static let formRefused = APIResponse.problem(403, "No session, or the form's CSRF token is missing or wrong.")

    static func redirect(_ description: String) -> APIResponse {
        APIResponse(303, description, content: nil, headers: ["Location": header("Location")])
    }

    static func form(_ properties: [String: JSONValue], required: [String] = ["csrf"]) -> APIBody {
        var properties = properties
        properties["csrf"] = ["type": "string", "description": "The page's CSRF token."]
        return APIBody(
            object(properties, required: required), contentType: "application/x-www-form-urlencoded")
    }

    static func query(_ name: String, _ description: String) -> APIParameter {
        APIParameter(name, in: .query, description)
    }

    static let deadQuery = [
        query("type", "Only this task type."), query("q", "Only those with these words in a failure."),
        query("error", "The same as `q`."),
        limitParameter,
    ]
    static let limitParameter = APIParameter(
        "limit", in: .query, "At most this many (default 200).",
        schema: ["type": "integer", "minimum": 1, "maximum": 10_000])
    static let taskState = APIParameter(
        "state", in: .query, "Which tasks (default `ready`).",
        schema: ["type": "string", "enum": ["ready", "delayed", "in_flight", "dead"]])

    static let adminOperations: [APIOperation] = {
        let console = "console"
        let api = "admin"
        let pages: [APIOperation] = [
            APIOperation(
                .get, "/admin/login", summary: "The sign-in page.", tag: console,
                parameters: [query("error", "Why the last attempt failed.")],
                responses: [
                    page,
                    .init(
                        401, "The page, saying why the last attempt failed.", content: ("text/html", ["type": "string"])
                    ),
                ]),
            APIOperation(
                .post, "/admin/login", summary: "Signs in with `ADMIN_TOKEN`: a session cookie for `/admin`.",
                tag: console, body: form(["token": ["type": "string"]], required: ["token"]),
                responses: [
                    redirect("To `/admin` with the session cookie, or back to the sign-in page with the error."),
                    .problem(400, "The form has no `token`, or its HTTP framing is broken."),
                    .problem(413, "The form is too large."),
                ]),
            APIOperation(
                .post, "/admin/logout", summary: "Ends the session.", tag: console, body: form([:]),
                responses: [redirect("To the sign-in page, the cookie removed."), formRefused]),
            APIOperation(
                .get, "/admin/assets/console.css", summary: "The console's style sheet.", tag: console,
                responses: [.init(200, "CSS.", content: ("text/css", ["type": "string"]))]),
            APIOperation(
                .get, "/admin/assets/console.js", summary: "The overview's refresh script.", tag: console,
                responses: [.init(200, "JavaScript.", content: ("text/javascript", ["type": "string"]))]),
            APIOperation(
                .get, "/admin", summary: "The overview: queues, workers, tasks/s, caches, limits, health.",
                tag: console, responses: [page, toLogin]),
            APIOperation(
                .get, "/admin/dead", summary: "Dead letters, searchable; retry or delete.", tag: console,
                parameters: deadQuery + [query("done", "What the last action did.")],
                responses: [page, toLogin, .problem(400, "`limit` is not an integer from 1 to 10000.")]),
            APIOperation(
                .get, "/admin/queues/{queue}", summary: "A queue's tasks in one state.", tag: console,
                parameters: [APIParameter("queue", in: .path, "The queue."), taskState],
                responses: [page, toLogin, .problem(400, "An unknown state.")]),
            APIOperation(
                .get, "/admin/tasks/{id}", summary: "One task: state, attempts, failures, holder, payload redacted.",
                tag: console, parameters: [APIParameter("id", in: .path, "The task's id.")],
                responses: [
                    page, toLogin,
                    .init(404, "No such task (or it completed).", content: ("text/html", ["type": "string"])),
                ]),
            APIOperation(
                .post, "/admin/dead/retry", summary: "Re-queues a dead task, or all matching the filter.",
                tag: console, body: deadForm, responses: [redirect("Back, saying how many."), formRefused]),
            APIOperation(
                .post, "/admin/dead/delete", summary: "Deletes a dead task, or all matching the filter.",
                tag: console, body: deadForm, responses: [redirect("Back, saying how many."), formRefused]),
            APIOperation(
                .get, "/admin/limits", summary: "A subject's windows, and the keys refused most.", tag: console,
                parameters: [
                    query("subject", "`user:ID`, `ip:ADDRESS`, `header:VALUE` or `global`."),
                    query("done", "What the last action did."),
                ],
                responses: [
                    page, toLogin, .problem(400, "Not a subject."),
                    .problem(501, "This rate-limit store cannot be inspected."),
                ]),
            APIOperation(
                .post, "/admin/limits/reset", summary: "Empties a subject's windows on every instance.", tag: console,
                body: form(["subject": ["type": "string"]], required: ["csrf", "subject"]),
                responses: [
                    redirect("Back to the subject."), formRefused, .problem(400, "Not a subject."),
                    .problem(501, "This rate-limit store cannot be reset."),
                ]),
        ]
        let id = APIParameter("id", in: .path, "The dead task's id.")
        let key = APIParameter(
            "key", in: .path, "`user:ID`, `ip:ADDRESS`, `header:VALUE` or `global`.",
            schema: ["type": "string", "pattern": "^(user:.+|ip:.+|header:.+|global)$"])
        let limitsUnavailable = APIResponse.problem(501, "This rate-limit store cannot be inspected or reset.")
        let apiOperations: [APIOperation] = [
            APIOperation(
                .get, "/admin/api/overview", summary: "What the overview shows.", tag: api, security: adminAccess,
                responses: [.init(200, "The overview.", json: ref("Overview"))] + adminRefusals),
            APIOperation(
                .get, "/admin/api/queues", summary: "Every queue's counts and oldest age.", tag: api,
                security: adminAccess,
                responses: [.init(200, "The queues.", json: list(ref("QueueStats")))] + adminRefusals),
            APIOperation(
                .get, "/admin/api/queues/{queue}/tasks", summary: "A queue's tasks in one state.", tag: api,
                security: adminAccess,
                parameters: [
                    APIParameter("queue", in: .path, "The queue."), taskState, limitParameter,
                ],
                responses: [
                    .init(200, "The tasks.", json: list(ref("Task"))),
                    .problem(400, "An unknown state, or a `limit` out of range."),
                ]
                    + adminRefusals),
            APIOperation(
                .get, "/admin/api/tasks/{id}", summary: "One task, its payload redacted.", tag: api,
                security: adminAccess, parameters: [APIParameter("id", in: .path, "The task's id.")],
                responses: [
                    .init(200, "The task.", json: ref("Task")), .problem(404, "No such task (or it completed)."),
                ] + adminRefusals),
            APIOperation(
                .get, "/admin/api/workers", summary: "The live workers, from their heartbeats.", tag: api,
                security: adminAccess,
                responses: [.init(200, "The workers.", json: list(ref("Worker")))] + adminRefusals),
            APIOperation(
                .get, "/admin/api/dead", summary: "Dead letters, newest first.", tag: api, security: adminAccess,
                parameters: deadQuery,
                responses: [
                    .init(200, "The dead tasks.", json: list(ref("DeadTask"))),
                    .problem(400, "`limit` is not an integer from 1 to 10000."),
                ] + adminRefusals),
            APIOperation(
                .post, "/admin/api/dead/{id}/retry", summary: "Re-queues one dead task.", tag: api,
                security: adminAccess, parameters: [id],
                responses: [
                    .init(200, "Re-queued.", json: ref("Retried")), .problem(404, "No such dead task."),
                ] + adminWriteRefusals),
            APIOperation(
                .delete, "/admin/api/dead/{id}", summary: "Deletes one dead task.", tag: api, security: adminAccess,
                parameters: [id],
                responses: [
                    .init(200, "Deleted.", json: ref("Deleted")), .problem(404, "No such dead task."),
                ] + adminWriteRefusals),
            APIOperation(
                .post, "/admin/api/dead/retry", summary: "Re-queues the listed dead tasks, or all matching.", tag: api,
                security: adminAccess, body: APIBody(ref("DeadAction")),
                responses: [.init(200, "How many.", json: ref("Retried"))] + bodyProblems + adminWriteRefusals),
            APIOperation(
                .post, "/admin/api/dead/delete", summary: "Deletes the listed dead tasks, or all matching.", tag: api,
                security: adminAccess, body: APIBody(ref("DeadAction")),
                responses: [.init(200, "How many.", json: ref("Deleted"))] + bodyProblems + adminWriteRefusals),
            APIOperation(
                .get, "/admin/api/limits", summary: "The keys this instance refused most in the last hour.", tag: api,
                security: adminAccess,
                responses: [.init(200, "The keys.", json: list(ref("RefusedKey")))] + adminRefusals),
            APIOperation(
                .get, "/admin/api/limits/{key}", summary: "Each policy's window for a key, nothing charged.",
                tag: api, security: adminAccess, parameters: [key],
                responses: [
                    .init(200, "The windows.", json: ref("LimitReport")),
                    .problem(404, "No limits could have this key (not an address, say)."),
                    limitsUnavailable,
                ] + adminRefusals),
            APIOperation(
                .delete, "/admin/api/limits/{key}", summary: "Empties a key's windows on every instance.", tag: api,
                security: adminAccess, parameters: [key],
                responses: [
                    .init(200, "How many windows.", json: ref("LimitsReset")),
                    .problem(404, "No limits could have this key (not an address, say)."),
                    limitsUnavailable,
                ] + adminWriteRefusals),
        ]
        return pages + apiOperations
    }()

    static let deadForm = form(
        [
            "id": ["type": "string"], "all": ["type": "string", "enum": ["1"]], "type": ["type": "string"],
            "error": ["type": "string"], "from": ["type": "string"],
        ])

    static func list(_ items: JSONValue) -> JSONValue { ["type": "array", "items": items] }

    static let integer: JSONValue = ["type": "integer"]
    static let number: JSONValue = ["type": "number"]
    static let string: JSONValue = ["type": "string"]
    static let strings: JSONValue = list(string)

    static let adminSchemas: [String: JSONValue] = [
        "QueueStats": object(
            [
                "queue": string, "ready": integer, "delayed": integer, "in_flight": integer, "dead": integer,
                "oldest_age_seconds": number,
            ], required: ["queue", "ready", "delayed", "in_flight", "dead", "oldest_age_seconds"]),
        "DeadTask": object(
            [
                "id": string, "type": string, "queue": string, "attempts": integer, "reason": string,
                "history": strings, "died_at": number,
            ], required: ["id", "type", "queue", "attempts", "reason", "history", "died_at"]),
        "Task": object(
            [
                "id": string, "type": string, "queue": string,
                "state": ["type": "string", "enum": ["ready", "delayed", "in_flight", "dead"]], "attempts": integer,
                "max_attempts": integer, "payload": ["type": "string", "description": "Redacted JSON."],
                "history": strings, "created_at": number, "lease_until": number, "died_at": number,
                "held_by": string,
            ],
            required: ["id", "type", "queue", "state", "attempts", "max_attempts", "payload", "history", "created_at"]),
        "Worker": object(
            [
                "id": string, "host": string, "pid": integer, "lanes": integer, "lanes_busy": integer,
                "tasks_done": integer, "holding": strings, "queues": strings, "claiming": ["type": "boolean"],
                "started_at": number, "seen_at": number, "expires_at": number,
            ],
            required: [
                "id", "host", "pid", "lanes", "lanes_busy", "tasks_done", "holding", "queues", "claiming", "started_at",
                "seen_at", "expires_at",
            ]),
        "Overview": object(
            [
                "at": number, "queues": list(ref("QueueStats")), "workers": list(ref("Worker")), "database": string,
                "redis": string, "tasks_processed": ["type": "object", "additionalProperties": number],
                "caches": [
                    "type": "object", "additionalProperties": ["type": "object", "additionalProperties": number],
                ],
                "rate_limits": [
                    "type": "object", "additionalProperties": ["type": "object", "additionalProperties": number],
                ],
            ],
            required: ["at", "queues", "workers", "database", "redis", "tasks_processed", "caches", "rate_limits"]),
        "DeadAction": [
            "type": "object", "description": "`ids`, or `all` with an optional filter (nothing else is done to all).",
            "properties": [
                "ids": nullable(strings), "all": nullable(["type": "boolean"]), "type": nullable(string),
                "error": nullable(string),
            ],
        ],
        "Retried": object(["retried": integer], required: ["retried"]),
        "Deleted": object(["deleted": integer], required: ["deleted"]),
        "RefusedKey": object(
            ["policy": string, "key": string, "refusals": integer], required: ["policy", "key", "refusals"]),
        "LimitReport": object(
            [
                "key": string,
                "policies": list(
                    object(
                        [
                            "name": string, "limit": integer, "remaining": integer,
                            "reset": ["type": "integer", "description": "When quota frees, Unix seconds."],
                            "reset_seconds": number, "window_seconds": number,
                            "algorithm": ["type": "string", "enum": ["sliding_log", "gcra"]],
                            "allowed": ["type": "boolean"],
                        ],
                        required: [
                            "name", "limit", "remaining", "reset", "reset_seconds", "window_seconds", "algorithm",
                            "allowed",
                        ])),
            ], required: ["key", "policies"]),
        "LimitsReset": object(["key": string, "reset": integer], required: ["key", "reset"]),
    ]
}
