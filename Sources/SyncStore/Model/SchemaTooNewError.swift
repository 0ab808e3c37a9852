import Foundation
import SyncCore

/// The database was migrated by a newer Tributary than this one: running on it could
/// misread or damage what the newer version wrote, so the store refuses to start.
public struct SchemaTooNewError: Error, CustomStringConvertible, Sendable, Equatable {
    public let databaseVersion: Int
    public let supportedVersion: Int
    public init(databaseVersion: Int, supportedVersion: Int) {
        self.databaseVersion = databaseVersion
        self.supportedVersion = supportedVersion
    }
    public var description: String {
        "the database schema is at version \(databaseVersion), newer than this tributary knows (\(supportedVersion)): run a newer tributary"
    }
}
