import ArgumentParser
import Foundation

/// The `tributary` command: the server (`serve`, `migrate`) and, later, client commands.
struct Tributary: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary",
        abstract: "A sync service: durable, checkpointed, retried syncs from upstream APIs into a record store.",
        subcommands: [Serve.self, Migrate.self, SourceCommand.self, CredentialCommand.self, SyncCommand.self, RecordsCommand.self, HealthCommand.self, NodeCommand.self, StatsCommand.self, PruneCommand.self, SecretsCommand.self]
    )
}

/// Entry point: usage errors print one line and exit 3 (docs/api.md, "Client commands").
@main
enum Main {
    static func main() async {
        do {
            var command = try Tributary.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            finish(0)
        } catch let exit as ExitCode {
            finish(exit.rawValue)
        } catch let reported as ReportedFailure {
            finish(reported.exitCode)
        } catch {
            if !(error is CommandFailure) {
                let code = Tributary.exitCode(for: error)
                if code == .success || error is CleanExit {
                    Tributary.exit(withError: error)
                }
            }
            let (message, code) = failure(error)
            FileHandle.standardError.write(Data("tributary: \(message)\n".utf8))
            finish(code)
        }
    }

    /// The one line and the exit code a failed command ends with.
    static func failure(_ error: any Error) -> (message: String, exitCode: Int32) {
        if let failure = error as? CommandFailure { return (failure.message, failure.exitCode) }
        let code = Tributary.exitCode(for: error)
        let message = Tributary.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        return (message, code == .validationFailure ? 3 : code.rawValue)
    }

    /// Flushes the output and leaves at once. The command's work is done by now (a server has
    /// shut down gracefully); `exit` would also run the process's exit handlers while the
    /// HTTP client's event-loop threads still run, and a client command was seen to hang
    /// there on a loaded machine after printing everything.
    static func finish(_ code: Int32) -> Never {
        fflush(nil)  // every output stream
        _exit(code)
    }
}

/// A failure with a one-line reason and an exit status.
/// A failure the command has already reported in its own log format: exit with the code only.
struct ReportedFailure: Error {
    var exitCode: Int32
}

struct CommandFailure: Error {
    var message: String
    var exitCode: Int32
    init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
}
