import EnvoyFramework
import Foundation
import HTTPTypes
import Hummingbird
import Logging

struct RegisterRequest: Decodable {
    var email: String
    var password: String
    var name: String
}

struct LoginRequest: Decodable {
    var email: String
    var password: String
}

struct RegisteredUser: Encodable {
    var id: String
    var email: String
    var name: String
}

struct TokenResponse: Encodable {
    var accessToken: String
    var tokenType = "bearer"
    var expiresIn: Int

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case tokenType = "token_type"
        case expiresIn = "expires_in"
    }
}

extension Backend {
    /// `POST /v1/auth/register` and `POST /v1/auth/login`.
    func addAuthRoutes(to router: RouterGroup<EnvoyRequestContext>) {
        router.post("/v1/auth/register") { request, context in
            let body = try await json.decode(RegisterRequest.self, from: request)
            guard let email = EmailAddress.normalized(body.email) else {
                throw Problem.invalidField("email", "is not a valid email address")
            }
            guard body.password.utf8.count >= 8 else {
                throw Problem.invalidField("password", "must be at least 8 characters")
            }
            if let problem = Self.bcryptProblem(body.password) { throw Problem.invalidField("password", problem) }
            let name = try Validate.text(body.name, field: "name", maxLength: 100)
            let welcome = try emails.task(
                SendEmail.Payload(to: [email], template: "welcome", templateData: ["name": name, "email": email]))
            let hash = try await passwords.hash(body.password)
            guard let user = try await users.create(email: email, passwordHash: hash, name: name, with: [welcome])
            else {
                throw Problem(.conflict, detail: "An account with this email already exists.")
            }
            context.logger.info("user registered", metadata: ["user.id": "\(user.id)"])
            return try JSONResponse.make(
                RegisteredUser(id: user.id, email: user.email, name: user.name), status: .created)
        }

        router.post("/v1/auth/login") { request, context in
            let body = try await json.decode(LoginRequest.self, from: request)
            // A password bcrypt would truncate (a NUL, past 72 bytes) is one no account can have.
            guard let email = EmailAddress.normalized(body.email), Self.bcryptProblem(body.password) == nil else {
                throw Problem.unauthorized("The email or password is wrong.")
            }
            let account = try await users.credentials(email: email)
            guard try await passwords.verify(body.password, hash: account?.passwordHash), let account else {
                throw Problem.unauthorized("The email or password is wrong.")
            }
            let token = try await tokens.issue(userID: account.id)
            return try JSONResponse.make(TokenResponse(accessToken: token, expiresIn: Int(tokens.lifetime.inSeconds)))
        }
    }

    /// Why bcrypt cannot hash `password` as given, if it cannot: it stops at the first NUL byte and reads at most
    /// 72 bytes, so either would make a shorter password open the account.
    static func bcryptProblem(_ password: String) -> String? {
        if password.utf8.contains(0) { return "must not contain a NUL character" }
        if password.utf8.count > 72 { return "must be at most 72 bytes" }
        return nil
    }
}
