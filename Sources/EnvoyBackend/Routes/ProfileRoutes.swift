import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import Logging

extension Backend {
    /// The IANA time zones a profile may name (the document lists them).
    static let timeZones = Set(TimeZone.knownTimeZoneIdentifiers)

    /// `GET` and `PUT /v1/user/profile` (cached per user).
    func addProfileRoutes(to router: RouterGroup<EnvoyRequestContext>, reads: CachedReads) {
        let users = self.users
        Self.cachedRoute("/v1/user/profile", on: router, reads: reads, cache: profileCache, variant: { _ in "" }) {
            userID, _ in
            guard let profile = try await users.profile(id: userID) else {
                throw Problem.unauthorized("The account for this token no longer exists.")
            }
            return profile
        }

        router.put("/v1/user/profile") { request, context in
            let userID = try context.requireUser()
            var changes = try await json.decode(ProfileChanges.self, from: request)
            if let name = changes.name { changes.name = try Validate.text(name, field: "name", maxLength: 100) }
            if let company = changes.company {
                changes.company = try Validate.text(company, field: "company", maxLength: 200, allowEmpty: true)
            }
            if let title = changes.jobTitle {
                changes.jobTitle = try Validate.text(title, field: "job_title", maxLength: 200, allowEmpty: true)
            }
            if let zone = changes.timezone, !Self.timeZones.contains(zone) {
                throw Problem.invalidField("timezone", "must be an IANA time zone such as Europe/Berlin")
            }
            guard let profile = try await users.update(id: userID, changes: changes) else {
                throw Problem.unauthorized("The account for this token no longer exists.")
            }
            await profileCache.invalidate(scope: userID)
            return try JSONResponse.make(profile)
        }
    }
}
