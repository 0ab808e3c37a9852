import AsyncHTTPClient
import Foundation
import NIOCore
import SyncCore

/// A JSON Lines answer read in pieces of whole lines, so a response of any size syncs in
/// bounded memory: each piece becomes a page with its own checkpoint (`lines`: how many
/// lines of this answer are committed). The same attempt goes on reading the open answer;
/// another attempt asks for it again and skips the committed lines.
struct OpenLines {
    /// The request URL, with `lines` the position this answer is at.
    var url: String
    var lines = 0
    var response: UpstreamClient.Response
    private var iterator: HTTPClientResponse.Body.AsyncIterator?
    private var pending: [UInt8] = []
    private var finished = false
    /// Bytes read from the answer so far.
    private(set) var bytesRead = 0

    init(url: String, response: UpstreamClient.Response) {
        self.url = url
        self.response = response
        if let stream = response.stream {
            iterator = stream.makeAsyncIterator()
        } else {
            // Not a stream (the upstream compressed it): the whole body, already read.
            pending = response.body
            bytesRead = response.body.count
            finished = true
        }
    }

    static let newline = UInt8(ascii: "\n")

    /// Reads more of the answer; `false` at its end. An answer that sends nothing for
    /// `timeout` seconds fails like a silent one.
    private mutating func fill(timeout: Double) async throws -> Bool {
        guard !finished, var it = iterator else { return false }
        let box = IteratorBox(it)
        let next: ByteBuffer?
        do {
            next = try await withDeadline(.milliseconds(Int64(timeout * 1000)), onTimeout: { HTTPClientError.deadlineExceeded }) {
                try await box.next()
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            // A stall or a cut mid-answer is the upstream's (retryable) fault, as before the body.
            throw UpstreamClient.classify(error, timeout: timeout)
        }
        it = box.iterator
        iterator = it
        guard let buffer = next else {
            finished = true
            return false
        }
        bytesRead += buffer.readableBytes
        pending.append(contentsOf: buffer.readableBytesView)
        return true
    }

    /// Drops the first `count` lines (those an earlier attempt committed).
    mutating func skip(_ count: Int, timeout: Double) async throws {
        var left = count
        while left > 0 {
            var cut = 0
            var i = pending.startIndex
            while left > 0, let at = pending[i...].firstIndex(of: Self.newline) {
                left -= 1
                cut = at + 1
                i = at + 1
            }
            pending.removeFirst(cut)
            if left > 0, try await !fill(timeout: timeout) {
                throw SyncErrorFactory.invalidResponse("the JSON Lines answer has fewer lines than were committed from it (\(count)): it changed since", status: response.status)
            }
        }
        lines = count
    }

    /// The next piece of whole lines, at least `target` bytes unless the answer ends first, and
    /// the number of line ends in it; `end` when nothing is left. A line longer than `maxLine`
    /// fails the attempt.
    mutating func nextPiece(target: Int, maxLine: Int, timeout: Double) async throws -> (bytes: [UInt8], lineEnds: Int, end: Bool) {
        while true {
            if pending.count >= target, let last = pending.lastIndex(of: Self.newline) {
                let piece = Array(pending[...last])
                pending.removeFirst(last + 1)
                let ends = piece.reduce(0) { $0 + ($1 == Self.newline ? 1 : 0) }
                lines += ends
                return (piece, ends, false)
            }
            if pending.count > maxLine, !pending.contains(Self.newline) {
                throw SyncErrorFactory.invalidResponse("a JSON Lines line is longer than max_page_bytes (\(maxLine))", status: response.status)
            }
            if try await !fill(timeout: timeout) {
                let piece = pending
                pending = []
                let ends = piece.reduce(0) { $0 + ($1 == Self.newline ? 1 : 0) }
                lines += ends
                return (piece, ends, true)
            }
        }
    }
}

/// The body's iterator, carried into the deadline's task and back. Only one read uses it at
/// a time: the attempt's pages are read one after another.
private final class IteratorBox: @unchecked Sendable {
    var iterator: HTTPClientResponse.Body.AsyncIterator
    init(_ iterator: HTTPClientResponse.Body.AsyncIterator) { self.iterator = iterator }
    func next() async throws -> ByteBuffer? { try await iterator.next() }
}

/// The answer an attempt is reading, between its pages (``OpenLines``). Only the attempt's
/// page reads touch it, one at a time: the engine awaits each before asking for the next.
final class LineStreamSlot: @unchecked Sendable {
    var open: OpenLines?
}
