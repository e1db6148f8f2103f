import Foundation
import EnvoyFramework
import HTTPTypes
import Logging

/// A user as the API shows it (the password hash never leaves the store's account methods).
public struct UserProfile: Codable, Sendable, Equatable {
    /// The user's id.
    public var id: String
    /// The login email.
    public var email: String
    /// Display name.
    public var name: String
    /// Company, if given.
    public var company: String?
    /// Job title, if given.
    public var jobTitle: String?
    /// IANA time zone, if given.
    public var timezone: String?
    /// Subscription plan (`free` until Paddle says otherwise).
    public var plan: String
    /// Whether the email address was verified.
    public var emailVerified: Bool
    /// Creation time, ISO 8601.
    public var createdAt: String
    /// Last change, ISO 8601.
    public var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case id, email, name, company, timezone, plan
        case jobTitle = "job_title"
        case emailVerified = "email_verified"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    /// Encodes every field, unset optional ones as `null`, so clients always see the same keys.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(email, forKey: .email)
        try container.encode(name, forKey: .name)
        try container.encode(company, forKey: .company)
        try container.encode(jobTitle, forKey: .jobTitle)
        try container.encode(timezone, forKey: .timezone)
        try container.encode(plan, forKey: .plan)
        try container.encode(emailVerified, forKey: .emailVerified)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}

/// The changes a profile update may make; nil fields are left alone.
public struct ProfileChanges: Codable, Sendable, Equatable {
    /// New display name.
    public var name: String?
    /// New company.
    public var company: String?
    /// New job title.
    public var jobTitle: String?
    /// New time zone.
    public var timezone: String?

    enum CodingKeys: String, CodingKey {
        case name, company, timezone
        case jobTitle = "job_title"
    }
}

/// Where users live.
public protocol UserStore: Sendable {
    /// Creates a user and, in the same transaction, commits `tasks` (its welcome email) to the outbox: both or
    /// neither, whenever the process dies. Nil, and no task, when the email is taken.
    func create(email: String, passwordHash: String, name: String, with tasks: [NewTask]) async throws -> UserProfile?
    /// The id and password hash for an email, for login.
    func credentials(email: String) async throws -> (id: String, passwordHash: String)?
    /// The profile of `id`.
    func profile(id: String) async throws -> UserProfile?
    /// Applies `changes` and returns the new profile.
    func update(id: String, changes: ProfileChanges) async throws -> UserProfile?
    /// Sets the subscription plan and returns the new profile.
    func setPlan(id: String, plan: String) async throws -> UserProfile?
}

/// `UserStore` on the application's SQL database, with the task outbox in the same database.
public struct SQLUserStore: UserStore {
    let database: any SQLDatabase
    let outbox: SQLTaskQueue

    /// A store on `database`, committing tasks that go with a new user to `outbox` (a queue on the same database).
    public init(database: any SQLDatabase, outbox: SQLTaskQueue) {
        self.database = database
        self.outbox = outbox
    }

    /// Inserts the user and its tasks in one transaction, relying on the unique index to refuse a taken email even
    /// under races.
    public func create(email: String, passwordHash: String, name: String, with tasks: [NewTask]) async throws
        -> UserProfile?
    {
        let id = UUID.random().uuidString.lowercased()
        let now = Timestamp.now()
        let outbox = self.outbox
        let user = try await database.transaction { db -> UserProfile? in
            guard
                let user = try await db.row(
                    """
                    INSERT INTO users (id, email, password_hash, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING RETURNING \(Self.profileColumns)
                    """,
                    id, email, passwordHash, name, now, now
                ).map(Self.profile)
            else { return nil }
            for task in tasks { _ = try await outbox.enqueue(task, in: db) }
            return user
        }
        if user != nil && !tasks.isEmpty { outbox.committed() }
        return user
    }

    /// The id and hash for `email` (case-insensitive).
    public func credentials(email: String) async throws -> (id: String, passwordHash: String)? {
        try await database.row(
            "SELECT id, password_hash FROM users WHERE \(database.dialect.equalsIgnoringCase("email"))", email
        ).map { (try $0["id"], try $0["password_hash"]) }
    }

    /// The profile, or nil.
    public func profile(id: String) async throws -> UserProfile? {
        try await database.row("SELECT \(Self.profileColumns) FROM users WHERE id = ?", id).map(Self.profile)
    }

    /// Updates the given fields and `updated_at`.
    public func update(id: String, changes: ProfileChanges) async throws -> UserProfile? {
        try await database.row(
            """
            UPDATE users SET name = COALESCE(?, name), company = COALESCE(?, company),
                job_title = COALESCE(?, job_title), timezone = COALESCE(?, timezone), updated_at = ?
            WHERE id = ? RETURNING \(Self.profileColumns)
            """,
            changes.name, changes.company, changes.jobTitle, changes.timezone, Timestamp.now(), id
        ).map(Self.profile)
    }

    /// Sets `plan` and `updated_at`.
    public func setPlan(id: String, plan: String) async throws -> UserProfile? {
        try await database.row(
            "UPDATE users SET plan = ?, updated_at = ? WHERE id = ? RETURNING \(Self.profileColumns)",
            plan, Timestamp.now(), id
        ).map(Self.profile)
    }

    static let profileColumns =
        "id, email, name, company, job_title, timezone, plan, email_verified, created_at, updated_at"

    static func profile(_ row: SQLRow) throws -> UserProfile {
        UserProfile(
            id: try row["id"], email: try row["email"], name: try row["name"], company: try row["company"],
            jobTitle: try row["job_title"], timezone: try row["timezone"], plan: try row["plan"],
            emailVerified: try row["email_verified"], createdAt: try row["created_at"],
            updatedAt: try row["updated_at"])
    }
}
