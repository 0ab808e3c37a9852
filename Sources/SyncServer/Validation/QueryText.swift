import Hummingbird
import SyncCore

extension Request {
    /// Every query parameter of every route, checked before any route reads one (by the
    /// problem middleware for the API, by the dashboard's page frame for its pages): a name or value holding U+0000 (`%00`) is `422`, naming
    /// the parameter. Nothing stored can hold it, and PostgreSQL refuses it in any statement.
    ///
    /// A parameter that takes one value and is given twice is `422` too: which one a route
    /// would read is a guess (`op=created&op=deleted` is not "either").
    func checkQueryText() throws {
        var seen = Set<BytewiseString>()
        for (name, value) in uri.queryParameters {
            if name.utf8.contains(0) || value.utf8.contains(0) {
                let shown = String(decoding: name.utf8.filter { $0 != 0 }, as: UTF8.self)
                throw Problem.validation([FieldError(shown.isEmpty ? "query" : shown, "must not contain U+0000 (NUL)")])
            }
            let key = String(name)
            if !Self.repeatable.contains(key), !seen.insert(BytewiseString(key)).inserted {
                throw Problem.validation([FieldError(key, "is given more than once; it takes one value")])
            }
        }
    }

    /// The parameters that take a list, given once per value (`status=queued&status=running`).
    static let repeatable: Set<String> = ["status"]
}
