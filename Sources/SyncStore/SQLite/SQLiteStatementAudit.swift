#if DEBUG
import GRDB
import GRDBSQLite
import Synchronization

/// Debug builds watch how often SQLite prepares a cached statement again
/// (`SQLITE_STMTSTATUS_REPREPARE`). A statement whose `WHERE` binds a value that SQLite
/// compares with a partial index's condition is prepared again on every run (the plan
/// depends on the value), which costs more than the run itself: vocabulary values belong
/// in the statement's text (`SQL`'s `literal:`), not in a binding. Tests read this to keep it so.
public enum SQLiteStatementAudit {
    private static let counts = Mutex<[String: Int32]>([:])

    /// Looks at every statement the connection holds prepared.
    static func sweep(_ db: Database) {
        var next = sqlite3_next_stmt(db.sqliteConnection, nil)
        while let statement = next {
            let reprepares = sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_REPREPARE, 0)
            if reprepares > 2, let text = sqlite3_sql(statement) {
                let sql = String(cString: text)
                counts.withLock { $0[sql] = max($0[sql] ?? 0, reprepares) }
            }
            next = sqlite3_next_stmt(db.sqliteConnection, statement)
        }
    }

    /// The statements prepared again more than twice on one connection, with the most times seen.
    public static var reprepared: [String: Int32] { counts.withLock { $0 } }
}
#endif
