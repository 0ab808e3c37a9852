#if DEBUG
import GRDB
import GRDBSQLite
import Synchronization

/// Debug builds watch how often SQLite prepares a cached statement again
/// (`SQLITE_STMTSTATUS_REPREPARE`) against how often it runs (`SQLITE_STMTSTATUS_RUN`). A statement whose `WHERE` binds a value that SQLite
/// compares with a partial index's condition is prepared again on every run (the plan
/// depends on the value), which costs more than the run itself: vocabulary values belong
/// in the statement's text (the vocabulary interpolation of ``StoreSQL``), not in a binding. Tests read this to keep it so.
public enum SQLiteStatementAudit {
    /// Per statement text, per connection: how often it was prepared again and how often it ran.
    private static let counts = Mutex<[String: [UInt: (reprepares: Int32, runs: Int32)]]>([:])

    /// Looks at every statement the connection holds prepared.
    static func sweep(_ db: Database) {
        guard let connection = db.sqliteConnection else { return }
        let id = UInt(bitPattern: connection)
        var next = sqlite3_next_stmt(connection, nil)
        while let statement = next {
            let reprepares = sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_REPREPARE, 0)
            if reprepares > 0, let text = sqlite3_sql(statement) {
                let runs = sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_RUN, 0)
                let sql = String(cString: text)
                counts.withLock { $0[sql, default: [:]][id] = (reprepares, runs) }
            }
            next = sqlite3_next_stmt(connection, statement)
        }
    }

    /// The statements prepared again on at least half their runs, summed over every
    /// connection (a schema change prepares each cached statement again once per
    /// connection, so fewer than four times in all is not counted): text → (prepared
    /// again, runs).
    public static var reprepared: [String: (reprepares: Int32, runs: Int32)] {
        counts.withLock { counts in
            counts.compactMapValues { perConnection in
                let total = perConnection.values.reduce((reprepares: Int32(0), runs: Int32(0))) {
                    ($0.reprepares &+ $1.reprepares, $0.runs &+ $1.runs)
                }
                return total.reprepares >= 4 && total.reprepares &* 2 >= total.runs ? total : nil
            }
        }
    }
}
#endif
