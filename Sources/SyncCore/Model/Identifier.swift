import Foundation
import Synchronization

/// Opaque, creation-time-sortable identifiers: a prefix (`src_`, `syn_`) and a
/// 26-character ULID (48-bit millisecond timestamp, 80 random bits, Crockford base32).
/// Within one process identifiers are strictly increasing, so keyset pagination by
/// id is stable even for ids minted in the same millisecond.
public enum Identifier {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    private static let last = Mutex<(ms: UInt64, random: (UInt16, UInt64))>((0, (0, 0)))

    /// Whether `text` has the shape of an identifier: a three-letter prefix, `_` and 26
    /// letters or digits (in any case). Source names of that shape are refused, so a name
    /// can never shadow another source's id in a path.
    public static func looksLikeID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 30, bytes[3] == UInt8(ascii: "_") else { return false }
        func isLetter(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
        func isAlnum(_ c: UInt8) -> Bool { isLetter(c) || (c >= 0x30 && c <= 0x39) }
        return bytes[0..<3].allSatisfy(isLetter) && bytes[4...].allSatisfy(isAlnum)
    }

    /// The smallest identifier with this prefix minted at `time` or later (time bits, then
    /// zeros): `id >= floor("syn", at: t)` selects the syncs created since `t`.
    public static func floor(_ prefix: String, at time: Date) -> String {
        encode(prefix, time: milliseconds(time), hi: 0, lo: 0)
    }

    /// The largest time an identifier holds: 48 bits of milliseconds (the year 10889).
    static let maxMilliseconds: UInt64 = (1 << 48) - 1

    /// `time` as the identifier's 48-bit milliseconds, clamped: before 1970 (or NaN) is 0, past
    /// the year 10889 (or infinite) is the largest. No conversion that can trap or wrap.
    static func milliseconds(_ time: Date) -> UInt64 {
        let ms = time.timeIntervalSince1970 * 1000
        guard ms > 0 else { return 0 }
        return ms < Double(maxMilliseconds) ? UInt64(ms) : maxMilliseconds
    }

    /// A new identifier with the given prefix, e.g. `make("syn")` → `syn_01JD…`.
    public static func make(_ prefix: String, now: Date = Date()) -> String {
        let ms = milliseconds(now)
        let (time, rnd) = last.withLock { state -> (UInt64, (UInt16, UInt64)) in
            if ms <= state.ms {
                // Same (or earlier) millisecond: increment the random part to stay monotonic.
                var (hi, lo) = state.random
                lo &+= 1
                if lo == 0 { hi &+= 1 }
                state.random = (hi, lo)
                return (state.ms, state.random)
            }
            let r = (UInt16.random(in: 0...UInt16.max), UInt64.random(in: 0...(UInt64.max >> 1)))
            state = (ms, r)
            return (ms, r)
        }
        return encode(prefix, time: time, hi: rnd.0, lo: rnd.1)
    }

    private static func encode(_ prefix: String, time: UInt64, hi: UInt16, lo low: UInt64) -> String {
        // 128 bits: 48 time | 16 hi random | 64 lo random; encode as 26 base32 chars (130 bits).
        var bytes = [UInt8](repeating: 0, count: 26)
        let high = (time << 16) | UInt64(hi) // top 64 bits
        // Bits are taken 5 at a time from a 130-bit big-endian number whose top 2 bits are 0.
        for i in 0..<26 {
            let bitIndex = 125 - i * 5 // position of the lowest bit of this group in the 128-bit value
            var value: UInt64
            if bitIndex >= 64 {
                value = high >> UInt64(bitIndex - 64)
            } else if bitIndex > 59 {
                value = (high << UInt64(64 - bitIndex)) | (low >> UInt64(bitIndex))
            } else if bitIndex >= 0 {
                value = low >> UInt64(bitIndex)
            } else {
                value = low << UInt64(-bitIndex)
            }
            bytes[i] = alphabet[Int(value & 31)]
        }
        return prefix + "_" + String(decoding: bytes, as: UTF8.self)
    }
}
