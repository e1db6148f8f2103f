import EnvoyFramework
import Foundation
import HTTPTypes

/// Envoy's OpenAPI 3.1 document, built from this configuration: the admin operations appear only with
/// `ADMIN_TOKEN`, a 503 for an unavailable limiter only where a policy fails closed, and application routes as
/// their authors described them (`Backend.describe`).
extension Backend {
    /// The document `GET /openapi.json` serves and `GET /docs` renders.
    public var apiDocument: OpenAPIDocument {
        var operations = Self.systemOperations + Self.paymentOperations
        operations += (Self.authOperations + Self.profileOperations + Self.notificationOperations).map(limited)
        operations += applicationOperations.map(limited)
        if configuration.adminToken != nil { operations += Self.adminOperations }
        return OpenAPIDocument(
            title: "Envoy", version: Self.version,
            description: """
                Accounts, profiles and notifications behind exact rate limits and a cache that never serves stale \
                data; Paddle webhooks queued durably. Every error is `application/problem+json` (RFC 9457); every \
                response carries `X-Request-Id`.
                """,
            operations: operations.map(Self.withRequestID), schemas: Self.schemas, headers: Self.headers,
            securitySchemes: [
                "bearer": [
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from `POST /v1/auth/login`.",
                ],
                "adminToken": [
                    "type": "http", "scheme": "bearer", "description": "`ADMIN_TOKEN` itself (the admin API).",
                ],
                "adminSession": [
                    "type": "apiKey", "in": "cookie", "name": .string(AdminAccess.cookie),
                    "description": .string(
                        "The console's session from `POST /admin/login`; a POST or DELETE also sends its CSRF "
                            + "token (`X-CSRF-Token`, or the form field `csrf`)."),
                ],
                "paddleSignature": [
                    "type": "apiKey", "in": "header", "name": "Paddle-Signature",
                    "description": "`ts=…;h1=…`: HMAC-SHA256 of `ts:body` under `PADDLE_WEBHOOK_SECRET`.",
                ],
            ])
    }

    /// Adds descriptions of routes added with `addRoutes` or `addCachedRoute`, so that `/openapi.json` lists them
    /// (described as rate limited: the limiter's headers and 429 are added).
    public mutating func describe(_ operations: [APIOperation]) {
        applicationOperations += operations
    }

    /// `operation` behind the token check and the limiter: its headers on every answer, and 429 (503 too where a
    /// policy fails closed).
    func limited(_ operation: APIOperation) -> APIOperation {
        var operation = operation
        let rateHeaders = Self.rateLimitHeaders
        operation.responses = operation.responses.map { response in
            var response = response
            response.headers.merge(rateHeaders) { own, _ in own }
            return response
        }
        var retry = rateHeaders
        retry["Retry-After"] = Self.header("Retry-After")
        operation.responses.append(
            .problem(429, "A rate-limit policy refused the request (`violated-policies` names them).", headers: retry))
        if configuration.rateLimitPolicies.contains(where: { $0.failureMode == .closed && !$0.shadow }),
            !operation.responses.contains(where: { $0.status == 503 })
        {
            operation.responses.append(.problem(503, "The rate-limit store is unreachable and a policy fails closed."))
        }
        return operation
    }

    static func withRequestID(_ operation: APIOperation) -> APIOperation {
        var operation = operation
        operation.responses = operation.responses.map { response in
            var response = response
            response.headers["X-Request-Id"] = header("X-Request-Id")
            return response
        }
        return operation
    }

    static var rateLimitHeaders: [String: JSONValue] {
        Dictionary(
            uniqueKeysWithValues: [
                "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy",
                "RateLimit",
            ].map { ($0, header($0)) })
    }

    static func header(_ name: String) -> JSONValue { ["$ref": .string("#/components/headers/\(name)")] }

    // MARK: Operations

    static let bodyProblems: [APIResponse] = [
        .problem(400, "The body is not JSON, not an object, or its HTTP framing is broken."),
        .problem(413, "The body is larger than the server accepts (1 MiB)."),
        .problem(422, "A field failed validation; `field` names it."),
    ]
    static let unauthorized = APIResponse.problem(
        401, "No access token, or one that is invalid or expired.",
        headers: ["WWW-Authenticate": header("WWW-Authenticate")])
    static let cached: [String: JSONValue] = ["X-Cache": header("X-Cache")]

    static let systemOperations: [APIOperation] = [
        APIOperation(
            .get, "/health", summary: "Whether this instance can serve: database, Redis and queue.", tag: "system",
            responses: [
                .init(200, "Serving (`ok`, or `degraded` while Redis or the queue is down).", json: ref("Health")),
                .init(503, "The database cannot be read: take this instance out of rotation.", json: ref("Health")),
            ]),
        APIOperation(
            .get, "/metrics", summary: "Every metric, in Prometheus' text format.", tag: "system",
            responses: [.init(200, "The exposition.", content: ("text/plain", ["type": "string"]))]),
        APIOperation(
            .get, "/openapi.json", summary: "This document.", tag: "system",
            responses: [.init(200, "The OpenAPI 3.1 document.", json: ["type": "object"])]),
        APIOperation(
            .get, "/docs", summary: "This document as a page (self-contained).", tag: "system",
            responses: [.init(200, "The page.", content: ("text/html", ["type": "string"]))]),
    ]

    static let paymentOperations: [APIOperation] = [
        APIOperation(
            .post, "/v1/payments/webhook",
            summary:
                "A Paddle Billing webhook: signature verified over the raw body, queued durably, answered at once.",
            tag: "payments", security: ["paddleSignature"],
            body: APIBody(
                object(
                    [
                        "event_id": ["type": "string", "minLength": 1],
                        "event_type": ["type": "string", "minLength": 1],
                        "occurred_at": ["type": "string"], "data": ["type": "object"],
                    ], required: ["event_id", "event_type", "occurred_at", "data"])),
            responses: [
                .init(200, "Queued (or already queued: `duplicate`).", json: ref("WebhookReceipt")),
                .problem(400, "The body is not UTF-8 JSON, or not a Paddle event."),
                .problem(
                    401, "The Paddle-Signature header is missing, malformed, expired, from the future or wrong."),
                .problem(413, "The body is larger than the server accepts (1 MiB)."),
                .problem(503, "`PADDLE_WEBHOOK_SECRET` is unset, or the queue cannot take the event."),
            ])
    ]

    static let authOperations: [APIOperation] = [
        APIOperation(
            .post, "/v1/auth/register", summary: "Creates an account and queues its welcome email.", tag: "auth",
            body: APIBody(ref("Registration")),
            responses: [
                .init(201, "Created.", json: ref("RegisteredUser")),
                .problem(409, "An account with this email already exists."),
            ] + bodyProblems),
        APIOperation(
            .post, "/v1/auth/login", summary: "Exchanges an email and password for an access token.", tag: "auth",
            body: APIBody(ref("Credentials")),
            responses: [
                .init(200, "The token.", json: ref("Token")),
                .problem(401, "The email or password is wrong."),
            ] + bodyProblems),
    ]

    static let profileOperations: [APIOperation] = [
        APIOperation(
            .get, "/v1/user/profile", summary: "The caller's profile (cached per user).", tag: "profile",
            security: ["bearer"],
            responses: [.init(200, "The profile.", json: ref("Profile"), headers: cached), unauthorized]),
        APIOperation(
            .put, "/v1/user/profile", summary: "Changes the caller's profile; every instance serves the change.",
            tag: "profile", security: ["bearer"], body: APIBody(ref("ProfileChanges")),
            responses: [.init(200, "The new profile.", json: ref("Profile")), unauthorized] + bodyProblems),
    ]

    static let notificationOperations: [APIOperation] = [
        APIOperation(
            .get, "/api/notifications", summary: "The caller's notifications, newest first (cached per query).",
            tag: "notifications", security: ["bearer"],
            parameters: [
                APIParameter(
                    "limit", in: .query, "At most this many (default 20).",
                    schema: ["type": "integer", "minimum": 1, "maximum": 100]),
                APIParameter(
                    "offset", in: .query, "Skip this many (default 0).",
                    schema: ["type": "integer", "minimum": 0, "maximum": 1_000_000]),
                APIParameter(
                    "unread_only", in: .query, "Only unread ones (default false).",
                    schema: ["type": "string", "enum": ["true", "false", "1", "0"]]),
            ],
            responses: [
                .init(200, "A page.", json: ref("NotificationPage"), headers: cached), unauthorized,
                .problem(422, "A query parameter is out of range; `field` names it."),
            ]),
        APIOperation(
            .post, "/api/notifications", summary: "Creates a notification for the caller.", tag: "notifications",
            security: ["bearer"], body: APIBody(ref("NewNotification")),
            responses: [.init(201, "Created.", json: ref("Notification")), unauthorized] + bodyProblems),
        APIOperation(
            .put, "/api/notifications/read-all", summary: "Marks every notification of the caller read.",
            tag: "notifications", security: ["bearer"],
            responses: [.init(200, "How many changed.", json: ref("MarkedAllRead")), unauthorized]),
        APIOperation(
            .put, "/api/notifications/{id}/read", summary: "Marks one notification read.", tag: "notifications",
            security: ["bearer"], parameters: [APIParameter("id", in: .path, "The notification's id.")],
            responses: [
                .init(200, "The notification.", json: ref("Notification")), unauthorized,
                .problem(404, "No such notification for this user."),
            ]),
        APIOperation(
            .delete, "/api/notifications/{id}", summary: "Deletes one notification.", tag: "notifications",
            security: ["bearer"], parameters: [APIParameter("id", in: .path, "The notification's id.")],
            responses: [
                .init(204, "Deleted."), unauthorized, .problem(404, "No such notification for this user."),
            ]),
    ]

    // MARK: Schemas

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    static func object(_ properties: [String: JSONValue], required: [String]) -> JSONValue {
        ["type": "object", "properties": .object(properties), "required": .array(required.map { .string($0) })]
    }

    /// Text as `Validate.text` takes it: no control character but a newline, at most `maxLength`, and (unless it
    /// may be empty) something besides white space.
    static func text(maxLength: Int, allowEmpty: Bool = false) -> JSONValue {
        let allowed = #"[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]"#
        let visible = #"[^\s\u0000-\u001F\u007F-\u009F]"#
        return [
            "type": "string", "maxLength": .number(Double(maxLength)),
            "pattern": .string(allowEmpty ? "^\(allowed)*$" : "^\(allowed)*\(visible)\(allowed)*$"),
        ]
    }

    /// `schema`, or null.
    static func nullable(_ schema: JSONValue) -> JSONValue { ["anyOf": [schema, ["type": "null"]]] }

    static let email: JSONValue = ["type": "string", "format": "email", "maxLength": 254]
    static let timestamp: JSONValue = ["type": "string", "description": "RFC 3339, UTC."]
    static let nullableText: JSONValue = ["type": ["string", "null"]]

    static let schemas: [String: JSONValue] = [
        "Problem": [
            "type": "object", "required": ["type", "title", "status", "detail"],
            "properties": [
                "type": ["type": "string"], "title": ["type": "string"], "status": ["type": "integer"],
                "detail": ["type": "string"], "field": ["type": "string"],
                "violated-policies": ["type": "array", "items": ["type": "string"]],
            ],
        ],
        "Registration": object(
            [
                "email": email,
                "password": [
                    "type": "string", "minLength": 8, "maxLength": 72, "pattern": #"^[^\u0000]*$"#,
                    "description": "8 to 72 bytes of UTF-8, no NUL (bcrypt reads no more).",
                ],
                "name": text(maxLength: 100),
            ], required: ["email", "password", "name"]),
        "Credentials": object(
            ["email": ["type": "string"], "password": ["type": "string"]], required: ["email", "password"]),
        "RegisteredUser": object(
            ["id": ["type": "string"], "email": ["type": "string"], "name": ["type": "string"]],
            required: ["id", "email", "name"]),
        "Token": object(
            [
                "access_token": ["type": "string"], "token_type": ["type": "string", "const": "bearer"],
                "expires_in": ["type": "integer", "description": "Seconds."],
            ], required: ["access_token", "token_type", "expires_in"]),
        "Profile": object(
            [
                "id": ["type": "string"], "email": ["type": "string"], "name": ["type": "string"],
                "company": nullableText, "job_title": nullableText, "timezone": nullableText,
                "plan": ["type": "string"], "email_verified": ["type": "boolean"], "created_at": timestamp,
                "updated_at": timestamp,
            ],
            required: [
                "id", "email", "name", "company", "job_title", "timezone", "plan", "email_verified", "created_at",
                "updated_at",
            ]),
        "ProfileChanges": [
            "type": "object", "description": "Only the fields sent change (a field that is null or absent does not).",
            "properties": [
                "name": nullable(text(maxLength: 100)), "company": nullable(text(maxLength: 200, allowEmpty: true)),
                "job_title": nullable(text(maxLength: 200, allowEmpty: true)),
                "timezone": nullable([
                    "type": "string", "description": "An IANA time zone, such as Europe/Berlin.",
                    "enum": .array(timeZones.sorted().map { .string($0) }),
                ]),
            ],
        ],
        "Notification": object(
            [
                "id": ["type": "string"], "title": ["type": "string"], "message": ["type": "string"],
                "type": ["type": "string"], "read": ["type": "boolean"], "created_at": timestamp,
            ], required: ["id", "title", "message", "type", "read", "created_at"]),
        "NotificationPage": object(
            ["notifications": ["type": "array", "items": ref("Notification")], "unread_count": ["type": "integer"]],
            required: ["notifications", "unread_count"]),
        "NewNotification": object(
            ["title": text(maxLength: 200), "message": text(maxLength: 5000), "type": nullable(text(maxLength: 50))],
            required: ["title", "message"]),
        "MarkedAllRead": object(["updated": ["type": "integer"]], required: ["updated"]),
        "WebhookReceipt": object(
            ["received": ["type": "boolean"], "event_id": ["type": "string"], "duplicate": ["type": "boolean"]],
            required: ["received", "event_id", "duplicate"]),
        "Health": object(
            [
                "status": ["type": "string", "enum": ["ok", "degraded", "unavailable"]],
                "components": [
                    "type": "object", "additionalProperties": ["type": "string"],
                    "required": ["database", "redis", "queue"],
                ],
            ], required: ["status", "components"]),
    ].merging(adminSchemas) { own, _ in own }

    static let headers: [String: JSONValue] = [
        "X-Request-Id": [
            "required": true, "description": "This request's id (a trusted proxy's, or a new one); on its log lines.",
            "schema": ["type": "string"],
        ],
        "X-Cache": [
            "required": true, "description": "Where the body came from.",
            "schema": ["type": "string", "enum": ["HIT", "MISS", "BYPASS"]],
        ],
        "X-RateLimit-Limit": [
            "description": "The limit of the policy closest to exhaustion.", "schema": ["type": "integer"],
        ],
        "X-RateLimit-Remaining": ["description": "Requests it has left.", "schema": ["type": "integer"]],
        "X-RateLimit-Reset": ["description": "When it frees quota, Unix seconds.", "schema": ["type": "integer"]],
        "RateLimit-Policy": [
            "description": "Every policy (draft-ietf-httpapi-ratelimit-headers-10).", "schema": ["type": "string"],
        ],
        "RateLimit": [
            "description": "Every policy's remaining and reset (the same draft).", "schema": ["type": "string"],
        ],
        "Retry-After": [
            "required": true, "description": "Seconds until the request can be admitted.",
            "schema": ["type": "integer"],
        ],
        "WWW-Authenticate": ["required": true, "schema": ["type": "string"]],
        "Location": ["required": true, "schema": ["type": "string"]],
    ]
}
