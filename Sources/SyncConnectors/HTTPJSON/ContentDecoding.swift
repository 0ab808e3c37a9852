import CZlib

/// Response bodies in the `Content-Encoding` the upstream names, inflated by Tributary
/// itself: `gzip` (`x-gzip`) with every member read (RFC 1952 §2.2: what `cat a.gz b.gz` and
/// streaming compressors produce), `deflate` with or without its zlib wrapper, `identity`,
/// and codings listed one after another. Anything after the compressed data, a stream cut
/// short, a coding that was not asked for, or a body that inflates past `limit` bytes (or
/// past 200 times its size: a bomb) is ``Failure``: the same bytes fail again, so the caller
/// reports it as a permanent `invalid_response`.
enum ContentDecoding {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The most an encoded body may inflate relative to its size.
    static let maxRatio = 200
    /// Codings applied one after another that are undone at most (each is a full pass).
    static let maxCodings = 2

    /// `body` decoded per the `Content-Encoding` values `encodings` (every field line).
    static func decode(_ body: [UInt8], encodings: [String], limit: Int) throws(Failure) -> [UInt8] {
        let codings = encodings.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: [" ", "\t"]).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        guard !codings.isEmpty else { return body }
        guard codings.count <= maxCodings else {
            throw Failure(description: "the body is encoded \(codings.count) times (\(maxCodings) at most)")
        }
        var bytes = body
        // Codings are listed in the order they were applied: undo the last first.
        for coding in codings.reversed() {
            let bound = min(limit, max(bytes.count, 1) * maxRatio)
            switch coding {
            case "gzip", "x-gzip": bytes = try inflate(bytes, format: .gzip, limit: bound)
            case "deflate": bytes = try inflateDeflate(bytes, limit: bound)
            default: throw Failure(description: "the body's Content-Encoding \"\(coding.prefix(40))\" was not asked for (gzip, deflate)")
            }
        }
        return bytes
    }

    enum Format {
        case gzip, zlib, raw
        var windowBits: Int32 {
            switch self {
            case .gzip: 15 + 16
            case .zlib: 15
            case .raw: -15
            }
        }
    }

    /// HTTP's `deflate` is the zlib format (RFC 9110 §8.4.1.2), but servers send raw deflate
    /// too: a body that does not start as a zlib stream is read as raw.
    static func inflateDeflate(_ body: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        // A zlib header: CM 8, a window of at most 32 KiB, and a check that makes it a multiple of 31.
        if body.count >= 2, body[0] & 0x0f == 8, body[0] >> 4 <= 7, (UInt16(body[0]) << 8 | UInt16(body[1])) % 31 == 0 {
            return try inflate(body, format: .zlib, limit: limit)
        }
        return try inflate(body, format: .raw, limit: limit)
    }

    static func inflate(_ body: [UInt8], format: Format, limit: Int) throws(Failure) -> [UInt8] {
        guard !body.isEmpty else { return [] }
        var stream = z_stream()
        guard inflateInit2_(&stream, format.windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, body.count * 4))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let what = format == .gzip ? "gzip" : "deflate"
        let result: Failure? = body.withUnsafeBufferPointer { input -> Failure? in
            guard let base = input.baseAddress else { return nil }
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = UInt32(input.count)
            while true {
                let code = chunk.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                guard output.count + produced <= limit else {
                    return Failure(description: "the \(what) body inflates past \(limit) bytes (max_page_bytes, or \(maxRatio) times its size)")
                }
                output.append(contentsOf: chunk[..<produced])
                switch code {
                case Z_STREAM_END:
                    let rest = Int(stream.avail_in)
                    if rest == 0 { return nil }
                    // Another gzip member (RFC 1952 §2.2) starts with the magic bytes; anything
                    // else after the end is not part of the body.
                    let at = input.count - rest
                    guard format == .gzip, rest >= 2, input[at] == 0x1f, input[at + 1] == 0x8b, inflateReset(&stream) == Z_OK else {
                        return Failure(description: "\(rest) bytes follow the end of the \(what) body")
                    }
                case Z_OK:
                    // Output space ran out: go on. Input ran out with the stream unfinished: cut short.
                    if stream.avail_in == 0 && stream.avail_out > 0 {
                        return Failure(description: "the \(what) body ends before its compressed data does")
                    }
                case Z_BUF_ERROR:
                    if stream.avail_in == 0 {
                        return Failure(description: "the \(what) body ends before its compressed data does")
                    }
                default:
                    return Failure(description: "the \(what) body is corrupt")
                }
            }
        }
        if let result { throw result }
        return output
    }
}
