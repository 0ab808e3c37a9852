import Foundation
import SyncCore

/// The one rule for a URL Tributary will send a request to, wherever it came from (a source's
/// `url`, a webhook, a next link, a `Link` header, a redirect's `Location`, the CLI's
/// `--server`): an absolute `http` or `https` URL (the scheme in any case) with a host, and a
/// port, if it names one, in 1...65535. Foundation parses `:99999` as a port, and a port past
/// 65535 reached the connection layer's `UInt16` conversion and stopped the process.
public enum HTTPURL {
    /// `text` (resolved against `base` when it is relative) if it follows the rule, else `nil`.
    public static func parse(_ text: String, relativeTo base: URL? = nil) -> URL? {
        guard let url = URL(string: text, relativeTo: base)?.absoluteURL else { return nil }
        return isUsable(url) ? url : nil
    }

    /// Whether `url` follows the rule.
    public static func isUsable(_ url: URL) -> Bool {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else { return false }
        // The port by the authority's own text: Foundation reads one too long for an Int as no
        // port at all (the default one).
        return AuthorityPort.isValid(in: url.absoluteString)
    }
}

