import Testing
import SyncCore

@Suite("Secret values and text from outside")
struct SecretValueTests {
    @Test func echoedSecretsAreMaskedInAnyEncodingAndShortOnesAreLeftAlone() {
        let text = "refresh RT/SECRET+1 revoked; RT%2FSECRET%2B1 again; secret CSSECRET1; key=abc"
        let masked = SecretRedaction.mask(text, values: ["RT/SECRET+1", "CSSECRET1", "abc"])
        #expect(masked == "refresh *** revoked; *** again; secret ***; key=abc")
        #expect(SecretRedaction.mask(.object(["u": .string("/x?appid=KEY12345")]), values: ["KEY12345"]) == .object(["u": .string("/x?appid=***")]))
    }

    @Test func controlCharactersCannotForgeALine() {
        let forged = "bad\n2026-12-06 critical tributary: INJECTED\r\u{1b}[31m\u{85}\u{2028}\u{202e}x"
        #expect(!LogText.clean(forged).unicodeScalars.contains { LogText.isUnsafe($0) })
        let escaped = LogText.escape(forged)
        #expect(!escaped.contains("\n") && escaped.contains("\\u{a}") && escaped.contains("\\u{202e}"))
        #expect(LogText.escape("plain text, é, 日本") == "plain text, é, 日本")
    }
}
