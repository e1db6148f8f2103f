import Foundation
import HTTPTypes
import HummingbirdBcrypt
import Logging
import NIOPosix

/// bcrypt hashing and verification, run on the thread pool (each call takes tens to hundreds of ms).
public struct PasswordHasher: Sendable {
    /// The bcrypt cost factor.
    public let cost: UInt8
    /// A valid hash of a random string, verified against when an email is unknown so that timing
    /// does not reveal which emails have accounts.
    private let decoy: String

    /// A hasher with the given cost (its decoy hash is made on the thread pool).
    public init(cost: UInt8) async throws {
        self.cost = cost
        self.decoy = try await NIOThreadPool.singleton.runIfActive {
            Bcrypt.hash(String(UInt64.random(in: .min ... .max)), cost: cost)
        }
    }

    /// The bcrypt hash of `password`.
    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    /// Whether `password` matches `hash`; with no hash, spends the same time and answers false.
    public func verify(_ password: String, hash: String?) async throws -> Bool {
        let target = hash ?? decoy
        let matches = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: target) }
        return matches && hash != nil
    }
}
