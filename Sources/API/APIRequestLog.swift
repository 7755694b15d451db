import SwiftletCore

/// What the API server logs about each request, in Firecracker's words where it has them
/// (tools and people grep for those): a line when a request arrives, at Info,
///
///     The API server received a Put request on "/machine-config" with body "{\"vcpu_count\": 2}".
///
/// and one with its answer: Debug when it succeeded; otherwise Firecracker's "Received
/// Error. Status code: 400 Bad Request. Message: …", at Warning for the client's mistakes
/// (4xx) and Error for the VMM's failures (5xx). Pure text: APIServer does the logging.
public enum APIRequestLog {
    /// A body is logged up to this many bytes (Firecracker logs it whole): a log line longer
    /// than the logger's ring would be dropped whole, and a 64 KiB body would be most of it.
    public static let maxBodyBytes = 1024

    /// The line for a request that has arrived.
    public static func received(_ request: HTTPRequest) -> String {
        var line = "The API server received a \(methodName(request.method)) request on \(quoted(request.path))"
        if !request.body.isEmpty {
            // Firecracker's text for a body that is not UTF-8 (it logs str's Debug form).
            let text = String(validatingUTF8Bytes: request.body) ?? "inconvertible to UTF-8"
            line += " with body \(quoted(text, maxBytes: maxBodyBytes))"
            if text.utf8.count > maxBodyBytes { line += " (the first \(maxBodyBytes) of \(text.utf8.count) bytes)" }
        }
        return line + "."
    }

    /// The level of the line about an answer with `status`.
    public static func level(forStatus status: Int) -> LogLevel {
        status >= 500 ? .error : status >= 400 ? .warning : .debug
    }

    /// The line for the answer to `method` on `path`, given after `microseconds`.
    public static func answered(method: String, path: String, _ response: HTTPResponse, microseconds: UInt64) -> String {
        guard response.status >= 400 else {
            return "The API server answered the \(methodName(method)) request on \(quoted(path)) with "
                + "\(response.status) \(response.reason) in \(microseconds) us."
        }
        return refused(response)
    }

    /// The line for an error answer (also one given to a request that could not be parsed,
    /// or to a connection about to be closed).
    public static func refused(_ response: HTTPResponse) -> String {
        "Received Error. Status code: \(response.status) \(response.reason). Message: \(faultMessage(response))"
    }

    /// The `fault_message` of an error body (APIError's), else the body as text.
    static func faultMessage(_ response: HTTPResponse) -> String {
        if case .string(let message)? = (try? JSONValue.parse(response.body))?["fault_message"] { return message }
        return response.bodyText
    }

    /// Firecracker's spelling of the methods it serves (its Method enum's Debug form).
    static func methodName(_ method: String) -> String {
        switch method {
        case "GET": return "Get"
        case "PUT": return "Put"
        case "PATCH": return "Patch"
        default: return printable(method)
        }
    }

    /// `text` in double quotes as Rust's Debug form of a str has it (Firecracker's `{:?}`):
    /// quotes and backslashes escaped, \n \r \t \0, other control characters as \u{…};
    /// cut after `maxBytes` of `text`. Nothing a client sends can break the line.
    static func quoted(_ text: String, maxBytes: Int = 256) -> String {
        var result = "\""
        var taken = 0
        for scalar in text.unicodeScalars {
            taken += UTF8.width(scalar)
            if taken > maxBytes { break }
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\0": result += "\\0"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (scalar.value >= 0x80 && scalar.value < 0xA0) {
                    result += "\\u{" + hex(UInt64(scalar.value)) + "}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

extension String {
    /// `bytes` as a String if they are valid UTF-8, else nil.
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        // Decoding replaces each invalid sequence with U+FFFD: valid input comes back unchanged.
        guard text.utf8.elementsEqual(bytes) else { return nil }
        self = text
    }
}
