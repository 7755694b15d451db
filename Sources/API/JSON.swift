import SwiftletCore

/// A JSON value as the control API needs it: strict and bounded.
///
/// - Numbers are integers only (`Int64`); a fraction or an exponent is rejected, since no
///   API field is fractional and Embedded Swift has no dependable Double parsing.
/// - Objects keep their members in input order; duplicate keys are rejected when parsing.
public enum JSONValue: Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for i in 0..<a.count where a[i].0 != b[i].0 || a[i].1 != b[i].1 { return false }
            return true
        default: return false
        }
    }

    /// The member named `key` of an object; nil for a missing key or a non-object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        for (name, value) in members where name == key { return value }
        return nil
    }

    /// A short name of the value's type, for error messages ("expected a string, got an integer").
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer: return "an integer"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Compact JSON text.
    public var description: String { serialized() }

    /// Compact JSON text (no insignificant whitespace), members in stored order.
    public func serialized() -> String {
        String(decoding: serializedBytes(), as: UTF8.self)
    }

    /// Compact JSON as UTF-8 bytes.
    public func serializedBytes() -> [UInt8] {
        var out: [UInt8] = []
        JSONValue.write(self, into: &out)
        return out
    }

    /// Parses one JSON text (see `JSONParser`).
    public static func parse(_ text: String, maxDepth: Int = JSONParser.defaultMaxDepth,
                             maxBytes: Int = JSONParser.defaultMaxBytes) throws(SwiftletError) -> JSONValue {
        try JSONParser.parse(Array(text.utf8), maxDepth: maxDepth, maxBytes: maxBytes)
    }

    /// Parses one JSON text from UTF-8 bytes (see `JSONParser`).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = JSONParser.defaultMaxDepth,
                             maxBytes: Int = JSONParser.defaultMaxBytes) throws(SwiftletError) -> JSONValue {
        try JSONParser.parse(bytes, maxDepth: maxDepth, maxBytes: maxBytes)
    }

    // MARK: serializer

    // Values nest at most as deep as they were built; parsed values at most maxDepth.
    private static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let n): out.append(contentsOf: String(n).utf8)
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, member) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.0, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.1, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Quotes and escapes: `"` and `\`, the C0 controls (short forms where JSON has them,
    /// else \u00XX) and DEL. Everything else is copied as UTF-8 (Swift strings are valid UTF-8).
    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(byte)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0x08: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "f"))
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0x00..<0x20, 0x7F:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// The strict JSON parser (RFC 8259 minus non-integer numbers).
///
/// Rejects: input over `maxBytes`, nesting over `maxDepth` (arrays and objects; recursion is
/// therefore bounded), fractions and exponents, integers outside Int64, leading zeros,
/// control characters and invalid UTF-8 in strings, unpaired surrogates in \u escapes,
/// duplicate object keys, a byte-order mark, and anything but whitespace after the value.
/// Every error is `SwiftletError.invalidArgument("invalid JSON at byte N: …")`.
public enum JSONParser {
    public static let defaultMaxDepth = 32
    public static let defaultMaxBytes = 64 * 1024

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth,
                             maxBytes: Int = defaultMaxBytes) throws(SwiftletError) -> JSONValue {
        guard bytes.count <= maxBytes else {
            throw .invalidArgument("invalid JSON: input is \(bytes.count) bytes, more than the limit of \(maxBytes)")
        }
        var reader = Reader(bytes: bytes, maxDepth: maxDepth)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        if reader.position < bytes.count {
            throw reader.error("unexpected \(Reader.describe(bytes[reader.position])) after the JSON value")
        }
        return value
    }

    struct Reader {
        let bytes: [UInt8]
        let maxDepth: Int
        var position = 0

        init(bytes: [UInt8], maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        func error(_ what: String, at offset: Int? = nil) -> SwiftletError {
            .invalidArgument("invalid JSON at byte \(offset ?? position): \(what)")
        }

        static func describe(_ byte: UInt8) -> String {
            if byte >= 0x21 && byte < 0x7F { return "character '\(String(decoding: [byte], as: UTF8.self))'" }
            return "byte 0x\(hex(UInt64(byte)))"
        }

        var atEnd: Bool { position >= bytes.count }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func parseValue(depth: Int) throws(SwiftletError) -> JSONValue {
            guard position < bytes.count else { throw error("unexpected end of input, expected a value") }
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .integer(try parseInteger())
            case UInt8(ascii: "."): throw error("numbers must be integers; fractions are not supported")
            default: throw error("unexpected \(Reader.describe(byte)), expected a value")
            }
        }

        mutating func literal(_ word: String) throws(SwiftletError) {
            let start = position
            for expected in word.utf8 {
                guard position < bytes.count, bytes[position] == expected else {
                    throw error("invalid literal, expected '\(word)'", at: start)
                }
                position += 1
            }
            // "truex", "null1": the literal must end here.
            if position < bytes.count, Reader.isIdentifierByte(bytes[position]) {
                throw error("invalid literal, expected '\(word)'", at: start)
            }
        }

        static func isIdentifierByte(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) ||
                (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ||
                (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
        }

        mutating func parseInteger() throws(SwiftletError) -> Int64 {
            let start = position
            var negative = false
            if bytes[position] == UInt8(ascii: "-") {
                negative = true
                position += 1
            }
            guard position < bytes.count, Reader.isDigit(bytes[position]) else {
                throw error("expected a digit after '-'", at: start)
            }
            if bytes[position] == UInt8(ascii: "0"), position + 1 < bytes.count, Reader.isDigit(bytes[position + 1]) {
                throw error("numbers must not have leading zeros", at: start)
            }
            // Accumulate negatively so that Int64.min parses.
            var value: Int64 = 0
            while position < bytes.count, Reader.isDigit(bytes[position]) {
                let digit = Int64(bytes[position] - UInt8(ascii: "0"))
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (next, o2) = times10.subtractingReportingOverflow(digit)
                if o1 || o2 { throw error("integer does not fit in 64 bits", at: start) }
                value = next
                position += 1
            }
            if position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: ".") {
                    throw error("numbers must be integers; fractions are not supported", at: start)
                }
                if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                    throw error("numbers must be integers; exponents are not supported", at: start)
                }
                if Reader.isIdentifierByte(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") {
                    throw error("invalid number", at: start)
                }
            }
            if negative { return value }
            guard value != Int64.min else { throw error("integer does not fit in 64 bits", at: start) }
            return -value
        }

        static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

        mutating func parseArray(depth: Int) throws(SwiftletError) -> JSONValue {
            guard depth <= maxDepth else { throw error("nesting is deeper than the limit of \(maxDepth)") }
            position += 1  // [
            var items: [JSONValue] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try parseValue(depth: depth))
                skipWhitespace()
                guard position < bytes.count else { throw error("unexpected end of input in an array, expected ',' or ']'") }
                switch bytes[position] {
                case UInt8(ascii: ","):
                    position += 1
                    skipWhitespace()
                    if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                        throw error("trailing comma in an array")
                    }
                case UInt8(ascii: "]"):
                    position += 1
                    return .array(items)
                default:
                    throw error("unexpected \(Reader.describe(bytes[position])) in an array, expected ',' or ']'")
                }
            }
        }

        mutating func parseObject(depth: Int) throws(SwiftletError) -> JSONValue {
            guard depth <= maxDepth else { throw error("nesting is deeper than the limit of \(maxDepth)") }
            position += 1  // {
            var members: [(String, JSONValue)] = []
            var keys = Set<String>()
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard position < bytes.count else { throw error("unexpected end of input in an object, expected a key") }
                guard bytes[position] == UInt8(ascii: "\"") else {
                    if bytes[position] == UInt8(ascii: "}") { throw error("trailing comma in an object") }
                    throw error("unexpected \(Reader.describe(bytes[position])), expected a string key")
                }
                let keyOffset = position
                let key = try parseString()
                guard keys.insert(key).inserted else {
                    throw error("duplicate key \"\(printable(key))\"", at: keyOffset)
                }
                skipWhitespace()
                guard position < bytes.count else { throw error("unexpected end of input, expected ':' after a key") }
                guard bytes[position] == UInt8(ascii: ":") else {
                    throw error("unexpected \(Reader.describe(bytes[position])), expected ':' after a key")
                }
                position += 1
                skipWhitespace()
                members.append((key, try parseValue(depth: depth)))
                skipWhitespace()
                guard position < bytes.count else { throw error("unexpected end of input in an object, expected ',' or '}'") }
                switch bytes[position] {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "}"):
                    position += 1
                    return .object(members)
                default:
                    throw error("unexpected \(Reader.describe(bytes[position])) in an object, expected ',' or '}'")
                }
            }
        }

        mutating func parseString() throws(SwiftletError) -> String {
            let start = position
            position += 1  // "
            var out: [UInt8] = []
            while true {
                guard position < bytes.count else { throw error("unterminated string", at: start) }
                let byte = bytes[position]
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    try parseEscape(into: &out)
                case 0x00..<0x20:
                    throw error("control character 0x\(hex(UInt64(byte))) in a string must be escaped")
                case 0x20..<0x80:
                    out.append(byte)
                    position += 1
                default:
                    try copyUTF8Sequence(into: &out)
                }
            }
        }

        /// One escape sequence starting at the backslash.
        mutating func parseEscape(into out: inout [UInt8]) throws(SwiftletError) {
            let start = position
            guard position + 1 < bytes.count else { throw error("unterminated escape sequence", at: start) }
            let kind = bytes[position + 1]
            position += 2
            switch kind {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(kind)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = UInt32(try hex4(escapeAt: start))
                if scalar >= 0xDC00 && scalar <= 0xDFFF {
                    throw error("unpaired low surrogate \\u\(hex(UInt64(scalar))) in a string", at: start)
                }
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                          bytes[position + 1] == UInt8(ascii: "u") else {
                        throw error("high surrogate \\u\(hex(UInt64(scalar))) is not followed by a low surrogate", at: start)
                    }
                    let lowStart = position
                    position += 2
                    let low = UInt32(try hex4(escapeAt: lowStart))
                    guard low >= 0xDC00 && low <= 0xDFFF else {
                        throw error("high surrogate \\u\(hex(UInt64(scalar))) is not followed by a low surrogate", at: start)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                appendUTF8(scalar, to: &out)
            default:
                throw error("invalid escape sequence '\\\(String(decoding: [kind < 0x80 && kind >= 0x20 ? kind : UInt8(ascii: "?")], as: UTF8.self))'", at: start)
            }
        }

        mutating func hex4(escapeAt start: Int) throws(SwiftletError) -> UInt16 {
            guard position + 4 <= bytes.count else { throw error("truncated \\u escape", at: start) }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("\\u escape needs four hex digits", at: start)
                }
                value = value << 4 | UInt16(digit)
                position += 1
            }
            return value
        }

        func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
            switch scalar {
            case 0..<0x80:
                out.append(UInt8(scalar))
            case 0x80..<0x800:
                out.append(UInt8(0xC0 | (scalar >> 6)))
                out.append(UInt8(0x80 | (scalar & 0x3F)))
            case 0x800..<0x10000:
                out.append(UInt8(0xE0 | (scalar >> 12)))
                out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
                out.append(UInt8(0x80 | (scalar & 0x3F)))
            default:
                out.append(UInt8(0xF0 | (scalar >> 18)))
                out.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
                out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
                out.append(UInt8(0x80 | (scalar & 0x3F)))
            }
        }

        /// Validates one multi-byte UTF-8 sequence (no overlong forms, no surrogates, at most
        /// U+10FFFF) and copies it.
        mutating func copyUTF8Sequence(into out: inout [UInt8]) throws(SwiftletError) {
            let start = position
            let lead = bytes[position]
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF  // bounds of the second byte
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: throw error("invalid UTF-8 (byte 0x\(hex(UInt64(lead))))")
            }
            guard start + length <= bytes.count else { throw error("truncated UTF-8 sequence") }
            for i in 1..<length {
                let byte = bytes[start + i]
                let (lo, hi) = i == 1 ? (low, high) : (UInt8(0x80), UInt8(0xBF))
                guard byte >= lo && byte <= hi else { throw error("invalid UTF-8 sequence") }
            }
            out.append(contentsOf: bytes[start..<(start + length)])
            position += length
        }
    }
}
