import XCTest
@testable import API
import SwiftletCore

final class JSONTests: XCTestCase {
    func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> JSONValue? {
        do { return try JSONValue.parse(text) } catch {
            XCTFail("unexpected error \(error) for \(text)", file: file, line: line)
            return nil
        }
    }

    /// The error message for input that must be rejected.
    func failure(_ bytes: [UInt8], maxDepth: Int = 32, maxBytes: Int = 65536,
                 file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let value = try JSONParser.parse(bytes, maxDepth: maxDepth, maxBytes: maxBytes)
            XCTFail("accepted \(String(decoding: bytes, as: UTF8.self).debugDescription) as \(value)", file: file, line: line)
            return ""
        } catch {
            guard case .invalidArgument(let message) = error else {
                XCTFail("wrong error kind \(error)", file: file, line: line)
                return ""
            }
            XCTAssertTrue(message.hasPrefix("invalid JSON"), message, file: file, line: line)
            return message
        }
    }

    func failure(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        failure(Array(text.utf8), file: file, line: line)
    }

    func testScalars() {
        XCTAssertEqual(parse("null"), .null)
        XCTAssertEqual(parse(" true "), .bool(true))
        XCTAssertEqual(parse("\tfalse\r\n"), .bool(false))
        XCTAssertEqual(parse("0"), .integer(0))
        XCTAssertEqual(parse("-0"), .integer(0))
        XCTAssertEqual(parse("42"), .integer(42))
        XCTAssertEqual(parse("-17"), .integer(-17))
        XCTAssertEqual(parse("9223372036854775807"), .integer(Int64.max))
        XCTAssertEqual(parse("-9223372036854775808"), .integer(Int64.min))
        XCTAssertEqual(parse("\"\""), .string(""))
        XCTAssertEqual(parse("\"abc\""), .string("abc"))
    }

    func testContainersKeepOrder() {
        let value = parse(#"{"b": 1, "a": [true, null, "x", {"c": []}], "z": {}}"#)
        XCTAssertEqual(value, .object([
            ("b", .integer(1)),
            ("a", .array([.bool(true), .null, .string("x"), .object([("c", .array([]))])])),
            ("z", .object([])),
        ]))
        XCTAssertEqual(value?["a"], .array([.bool(true), .null, .string("x"), .object([("c", .array([]))])]))
        XCTAssertNil(value?["missing"])
        XCTAssertNil(JSONValue.integer(1)["a"])
        // Order matters for equality.
        XCTAssertNotEqual(JSONValue.object([("a", .null), ("b", .null)]), .object([("b", .null), ("a", .null)]))
    }

    func testEscapes() {
        XCTAssertEqual(parse(#""\" \\ \/ \b \f \n \r \t""#), .string("\" \\ / \u{8} \u{C} \n \r \t"))
        XCTAssertEqual(parse(#""\u0041\u00e9\u20AC""#), .string("Aé€"))
        XCTAssertEqual(parse(#""\ud83d\ude00""#), .string("😀"))
        XCTAssertEqual(parse(#""\uD834\uDD1E""#), .string("𝄞"))
        XCTAssertEqual(parse(#""\u0000""#), .string("\u{0}"))
        XCTAssertEqual(parse("\"é€😀\""), .string("é€😀"))
    }

    func testNumbersAreIntegersOnly() {
        XCTAssertTrue(failure("1.5").contains("fractions are not supported"))
        XCTAssertTrue(failure("1e3").contains("exponents are not supported"))
        XCTAssertTrue(failure("1E+3").contains("exponents"))
        XCTAssertTrue(failure("-2.0").contains("fractions"))
        XCTAssertTrue(failure(".5").contains("fractions"))
        XCTAssertTrue(failure("01").contains("leading zeros"))
        XCTAssertTrue(failure("-01").contains("leading zeros"))
        XCTAssertTrue(failure("00").contains("leading zeros"))
        XCTAssertTrue(failure("9223372036854775808").contains("64 bits"))
        XCTAssertTrue(failure("-9223372036854775809").contains("64 bits"))
        XCTAssertTrue(failure("99999999999999999999999").contains("64 bits"))
        _ = failure("-")
        _ = failure("+1")
        _ = failure("1x")
        _ = failure("0x10")
        _ = failure("1-2")
        _ = failure("Infinity")
        _ = failure("NaN")
    }

    func testErrorsSayWhere() {
        XCTAssertEqual(failure(#"{"a": 1,}"#), "invalid JSON at byte 8: trailing comma in an object")
        XCTAssertEqual(failure("[1 2]"), "invalid JSON at byte 3: unexpected character '2' in an array, expected ',' or ']'")
        XCTAssertEqual(failure("{\"a\": 1.5}"), "invalid JSON at byte 6: numbers must be integers; fractions are not supported")
        XCTAssertEqual(failure("  null x"), "invalid JSON at byte 7: unexpected character 'x' after the JSON value")
        XCTAssertEqual(failure(#"{"a":1,"a":2}"#), "invalid JSON at byte 7: duplicate key \"a\"")
        // A key's escapes decode to control characters; the message stays one printable line.
        XCTAssertEqual(failure(#"{"a\nb":1,"a\nb":2}"#), "invalid JSON at byte 10: duplicate key \"a?b\"")
    }

    func testRejectsMalformedText() {
        let cases: [String] = [
            "", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{,}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}",
            "{a:1}", "{'a':1}", "['a']", "\"abc", "\"\\\"", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"",
            "\"\\ud800\"", "\"\\ud800x\"", "\"\\ud800\\u0041\"", "\"\\udc00\"", "tru", "truex", "nul", "nulll",
            "True", "FALSE", "undefined", "[1]]", "{}{}", "1 2", "/* c */ 1", "// c\n1", "{\"a\":1}x",
            "\u{FEFF}{}", "[\"a\" \"b\"]", "{\"a\":1 \"b\":2}", "{\"a\"::1}", "[01]", "{1:2}", "{null:1}",
        ]
        for text in cases { _ = failure(text) }
    }

    func testRejectsControlCharactersAndBadUTF8() {
        for byte: UInt8 in 0..<0x20 { _ = failure([0x22, byte, 0x22]) }
        XCTAssertTrue(failure([0x22, 0x0A, 0x22]).contains("control character"))
        let badUTF8: [[UInt8]] = [
            [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xC2], [0xC2, 0x41], [0xE0, 0x80, 0x80],
            [0xE0, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xEF, 0xBF], [0xF0, 0x80, 0x80, 0x80],
            [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xFE],
            [0xF0, 0x9F, 0x98],
        ]
        for bytes in badUTF8 {
            XCTAssertTrue(failure([0x22] + bytes + [0x22]).contains("UTF-8"))
        }
        // Valid edge cases.
        for bytes: [UInt8] in [[0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF],
                               [0xEE, 0x80, 0x80], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF]] {
            XCTAssertNoThrow(try JSONParser.parse([0x22] + bytes + [0x22]))
        }
        // Bytes above 0x7F outside a string.
        _ = failure([0xC3, 0xA9])
    }

    func testDepthAndSizeLimits() {
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        XCTAssertNoThrow(try JSONValue.parse(ok))
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        XCTAssertTrue(failure(deep).contains("nesting"))
        let deepObjects = String(repeating: "{\"a\":", count: 33) + "1" + String(repeating: "}", count: 33)
        XCTAssertTrue(failure(deepObjects).contains("nesting"))
        // Very deep input fails fast, without recursing.
        let veryDeep = String(repeating: "[", count: 60_000)
        XCTAssertTrue(failure(veryDeep).contains("nesting"))
        XCTAssertTrue(failure(Array(repeating: 0x20, count: 65_537) + [0x31]).contains("limit"))
        XCTAssertTrue(failure(Array("[1,2,3]".utf8), maxDepth: 0).contains("nesting"))
        XCTAssertTrue(failure(Array("12345".utf8), maxBytes: 4).contains("limit"))
        // A large, flat object is fine and duplicate detection stays fast.
        var members = (0..<5000).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        XCTAssertNoThrow(try JSONValue.parse("{" + members + "}"))
        members += ",\"k17\":1"
        XCTAssertTrue(failure("{" + members + "}").contains("duplicate key"))
    }

    func testSerializerEscapes() {
        XCTAssertEqual(JSONValue.string("a\"b\\c/d").serialized(), #""a\"b\\c/d""#)
        XCTAssertEqual(JSONValue.string("\n\r\t\u{8}\u{C}").serialized(), #""\n\r\t\b\f""#)
        XCTAssertEqual(JSONValue.string("\u{0}\u{1F}\u{7F}").serialized(), #""\u0000\u001f\u007f""#)
        XCTAssertEqual(JSONValue.string("é😀").serialized(), "\"é😀\"")
        XCTAssertEqual(JSONValue.object([("a", .integer(-5)), ("b", .array([.null, .bool(true), .bool(false)]))]).serialized(),
                       #"{"a":-5,"b":[null,true,false]}"#)
        XCTAssertEqual(JSONValue.integer(Int64.min).serialized(), "-9223372036854775808")
        XCTAssertEqual(JSONValue.object([]).serialized(), "{}")
        XCTAssertEqual(JSONValue.array([]).description, "[]")
    }

    func testRoundTrip() throws {
        let values: [JSONValue] = [
            .null, .bool(true), .bool(false), .integer(0), .integer(Int64.max), .integer(Int64.min),
            .string(""), .string("plain"), .string("quote\" backslash\\ slash/ nl\n tab\t nul\u{0} del\u{7F}"),
            .string("é€😀𝄞\u{FFFD}\u{10FFFF}"),
            .string(String((0..<128).map { Character(Unicode.Scalar(UInt8($0))) })),
            .array([.integer(1), .array([.array([])]), .object([])]),
            .object([("z", .integer(1)), ("a", .string("x")), ("", .null), ("é", .array([.bool(false)]))]),
            APIRouter.vmConfig({ var c = VMConfig(); c.kernelPath = "/k \"q\""; c.cmdline = "console=ttyS0\n"; return c }()),
        ]
        for value in values {
            let text = value.serialized()
            XCTAssertEqual(try JSONValue.parse(text), value, text)
            XCTAssertEqual(try JSONParser.parse(value.serializedBytes()), value)
            // And serializing the parse gives the same text.
            XCTAssertEqual(try JSONValue.parse(text).serialized(), text)
        }
    }

    func testRoundTripRandomValues() throws {
        var rng = SplitMix(seed: 0x5EED)
        for _ in 0..<300 {
            let value = randomValue(&rng, depth: 0)
            let text = value.serialized()
            XCTAssertEqual(try JSONValue.parse(text), value, text)
        }
    }

    func testRandomBytesNeverCrash() {
        var rng = SplitMix(seed: 42)
        let alphabet = Array("{}[]\",:\\u0123456789-.eEtrfalsn \n\u{1}".utf8) + [0xC3, 0xA9, 0xFF, 0xED]
        for _ in 0..<3000 {
            let count = Int(rng.next() % 40)
            let bytes = (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            do {
                let value = try JSONParser.parse(bytes)
                // Whatever parses must round-trip.
                XCTAssertEqual(try JSONValue.parse(value.serialized()), value)
            } catch {
                guard case .invalidArgument = error else { return XCTFail("wrong error \(error)") }
            }
        }
    }

    func randomValue(_ rng: inout SplitMix, depth: Int) -> JSONValue {
        switch rng.next() % (depth > 4 ? 4 : 6) {
        case 0: return .null
        case 1: return .bool(rng.next() % 2 == 0)
        case 2: return .integer(Int64(bitPattern: rng.next()) >> (rng.next() % 64))
        case 3: return .string(randomString(&rng))
        case 4: return .array((0..<Int(rng.next() % 4)).map { _ in randomValue(&rng, depth: depth + 1) })
        default:
            var members: [(String, JSONValue)] = []
            for i in 0..<Int(rng.next() % 4) { members.append(("\(randomString(&rng))#\(i)", randomValue(&rng, depth: depth + 1))) }
            return .object(members)
        }
    }

    func randomString(_ rng: inout SplitMix) -> String {
        let scalars: [Unicode.Scalar] = ["a", "Z", "\"", "\\", "/", "\n", "\u{0}", "\u{1F}", "\u{7F}", "é", "€", "😀", " "]
        var s = ""
        for _ in 0..<Int(rng.next() % 8) { s.unicodeScalars.append(scalars[Int(rng.next() % UInt64(scalars.count))]) }
        return s
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
