import Hummingbird
import SyncCore

extension Request {
    /// Every query parameter of every route, checked before any route reads one (by the
    /// problem middleware for the API, by the dashboard's page frame for its pages): a name or value holding U+0000 (`%00`) is `422`, naming
    /// the parameter. Nothing stored can hold it, and PostgreSQL refuses it in any statement.
    func checkQueryText() throws {
        for (name, value) in uri.queryParameters where name.utf8.contains(0) || value.utf8.contains(0) {
            let shown = String(decoding: name.utf8.filter { $0 != 0 }, as: UTF8.self)
            throw Problem.validation([FieldError(shown.isEmpty ? "query" : shown, "must not contain U+0000 (NUL)")])
        }
    }
}
