import Foundation

/// Reads a file the user named, up to `limit` bytes: a key, a secret or a config is small,
/// and a path that names something huge (`/dev/zero`, a 1 GB file) or not a regular file
/// is refused instead of read to the end.
enum BoundedFile {
    enum Failure: Error, CustomStringConvertible {
        case unreadable
        case tooLarge(Int)
        case notUTF8
        var description: String {
            switch self {
            case .unreadable: "cannot read the file"
            case .tooLarge(let limit): "the file is larger than \(limit) bytes"
            case .notUTF8: "the file is not UTF-8 text"
            }
        }
    }

    static func text(_ path: String, limit: Int) throws(Failure) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .unreadable }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: limit + 1) ?? Data()
        } catch {
            throw .unreadable
        }
        guard data.count <= limit else { throw .tooLarge(limit) }
        guard let text = String(data: data, encoding: .utf8) else { throw .notUTF8 }
        return text
    }
}
