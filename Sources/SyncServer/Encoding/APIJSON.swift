import Foundation
import SyncCore

/// The API's JSON conventions: snake_case keys (declared per type), RFC 3339 UTC
/// timestamps with milliseconds, sorted keys for stable output.
enum APIJSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamp.format(date))
        }
        return e
    }()

    static let decoder = JSONDecoder()
}
