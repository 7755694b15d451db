import SwiftletCore

// HTTP/1.1 for the control API: an incremental request parser (server side), a response
// serializer, and an incremental response parser plus request serializer (client side,
// `swiftlet ctl`). Pure: bytes in, values out; the socket code lives elsewhere.

/// An error answered with an HTTP status: a malformed request, or a request the API refuses.
/// `response()` turns it into Firecracker's `{"fault_message": "..."}` reply.
public struct APIError: Error, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    /// For 405: the methods the resource accepts (the Allow header).
    public var allow: String?

    public init(status: Int, message: String, allow: String? = nil) {
        self.status = status
        self.message = message
        self.allow = allow
    }

    public static func badRequest(_ message: String) -> APIError { APIError(status: 400, message: message) }

    public var description: String { "\(status) \(HTTPResponse.reasonPhrase(status)): \(message)" }

    /// The reply: this status, `{"fault_message": message}`, and Allow for 405.
    public func response() -> HTTPResponse {
        var response = HTTPResponse.json(.object([("fault_message", .string(message))]), status: status)
        if let allow { response.headers.append(HTTPHeader(name: "Allow", value: allow)) }
        return response
    }
}

public struct HTTPHeader: Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public enum HTTPVersion: Equatable, CustomStringConvertible {
    case http10, http11
    public var description: String { self == .http10 ? "HTTP/1.0" : "HTTP/1.1" }
}

/// One parsed request.
public struct HTTPRequest: Equatable {
    /// The method token as sent (methods are case-sensitive: "get" is not GET).
    public var method: String
    /// The request target as sent, e.g. "/vm?x=1".
    public var target: String
    /// The target up to '?'.
    public var path: String
    /// The target after '?', if any.
    public var query: String?
    public var version: HTTPVersion
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// Whether the connection stays open after the response (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool

    public init(method: String, target: String, version: HTTPVersion = .http11,
                headers: [HTTPHeader] = [], body: [UInt8] = [], keepAlive: Bool = true) {
        self.method = method
        self.target = target
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(target[..<q])
            query = String(target[target.utf8.index(after: q)...])
        } else {
            path = target
            query = nil
        }
        self.version = version
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    /// The first header of that name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        for header in headers where asciiCaseInsensitiveEqual(header.name, name) { return header.value }
        return nil
    }

    /// Bytes of a client request (for `swiftlet ctl`): origin-form target, Host: localhost,
    /// and for a body, Content-Type: application/json and Content-Length.
    public static func serializeClientRequest(method: String, target: String, body: [UInt8]? = nil,
                                              keepAlive: Bool = false) -> [UInt8] {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
        if let body {
            text += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        if !keepAlive { text += "Connection: close\r\n" }
        text += "\r\n"
        var bytes = Array(text.utf8)
        if let body { bytes.append(contentsOf: body) }
        return bytes
    }
}

/// What the request parser says after being fed.
public enum HTTPParseResult: Equatable {
    /// No complete request is buffered yet: read more from the socket.
    case needMore
    /// The request's head asked for `Expect: 100-continue`: write `HTTPResponse.continueBytes`,
    /// then call `next()` again. Reported once per request.
    case sendContinue
    /// A complete request, removed from the buffer. Call `next()` again: more may be buffered.
    case request(HTTPRequest)
    /// The input is malformed or over a limit. Send `error.response()` and close the
    /// connection; the parser keeps answering this error.
    case error(APIError)
}

/// Incremental HTTP/1.1 request parser: `feed` bytes as they arrive, then call `next()` until
/// it says `.needMore`. Several requests in one buffer (pipelining) come out one by one.
///
/// Limits: request line plus headers at most `maxHeadBytes` (else 431), at most `maxHeaders`
/// header fields (else 431), body at most `maxBodyBytes` by Content-Length (else 413).
/// Transfer-Encoding is refused (chunked: 411, asking for Content-Length; others: 400, so every client error is a 4xx).
/// PUT, PATCH and POST without Content-Length: 411 (a body without a length cannot be framed).
/// Invalid or repeated Content-Length, malformed request line or header, bare CR or LF,
/// obsolete line folding, a version other than HTTP/1.0 or 1.1: 400. Unparsed bytes are
/// bounded: at most maxHeadBytes while a head is incomplete, then the announced body.
/// Host is not required (clients on a Unix socket differ in what they send).
public struct HTTPRequestParser {
    public static let maxHeadBytes = 8 * 1024
    public static let maxHeaders = 64
    /// The body limit unless the server is given another (--http-api-max-payload-size).
    public static let defaultMaxBodyBytes = VMConfig.defaultAPIMaxPayloadBytes
    public let maxBodyBytes: Int

    private struct Head {
        var method: String
        var target: String
        var version: HTTPVersion
        var headers: [HTTPHeader]
        var contentLength: Int
        var keepAlive: Bool
        var expectContinue: Bool
    }

    private var buffer: [UInt8] = []
    private var start = 0           // first byte not yet consumed
    private var scanned = 0         // bytes after `start` already searched for the end of the head
    private var head: Head?
    private var continueReported = false
    private var failure: APIError?

    public init(maxBodyBytes: Int = HTTPRequestParser.defaultMaxBodyBytes) {
        self.maxBodyBytes = maxBodyBytes
    }

    /// Bytes received but not yet returned as part of a request.
    public var bufferedByteCount: Int { buffer.count - start }

    /// True when no partial request is buffered (a clean point to close an idle connection).
    public var isIdle: Bool { head == nil && bufferedByteCount == 0 }

    public mutating func feed(_ bytes: [UInt8]) {
        guard failure == nil else { return }
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil else { return }
        buffer.append(contentsOf: bytes)
    }

    public mutating func next() -> HTTPParseResult {
        if let failure { return .error(failure) }
        if head == nil {
            skipLeadingEmptyLines()
            guard let end = findEndOfHead() else {
                if bufferedByteCount > HTTPRequestParser.maxHeadBytes {
                    return fail(431, "request line and headers are longer than \(HTTPRequestParser.maxHeadBytes) bytes")
                }
                return .needMore
            }
            if end - start > HTTPRequestParser.maxHeadBytes {
                return fail(431, "request line and headers are longer than \(HTTPRequestParser.maxHeadBytes) bytes")
            }
            switch parseHead(buffer[start..<(end - 4)]) {
            case .success(let parsed): head = parsed
            case .failure(let error): return fail(error)
            }
            start = end
            scanned = 0
        }
        guard let current = head else { return .needMore }
        if bufferedByteCount < current.contentLength {
            if current.expectContinue && !continueReported {
                continueReported = true
                return .sendContinue
            }
            return .needMore
        }
        let body = Array(buffer[start..<(start + current.contentLength)])
        start += current.contentLength
        head = nil
        continueReported = false
        compact()
        return .request(HTTPRequest(method: current.method, target: current.target, version: current.version,
                                    headers: current.headers, body: body, keepAlive: current.keepAlive))
    }

    private mutating func fail(_ status: Int, _ message: String) -> HTTPParseResult {
        fail(APIError(status: status, message: message))
    }

    private mutating func fail(_ error: APIError) -> HTTPParseResult {
        failure = error
        head = nil
        buffer = []
        start = 0
        return .error(error)
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.count <= 4 * HTTPRequestParser.maxHeadBytes)
            start = 0
        } else if start >= HTTPRequestParser.maxHeadBytes {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// RFC 9112 2.2: a server should ignore empty lines before a request line (some clients
    /// send CRLF after a body).
    private mutating func skipLeadingEmptyLines() {
        while start + 1 < buffer.count, buffer[start] == 0x0D, buffer[start + 1] == 0x0A {
            start += 2
            scanned = 0
        }
        if start > 0 && start == buffer.count { compact() }
    }

    /// Index just past the CRLFCRLF ending the head, searching only bytes not searched before.
    private mutating func findEndOfHead() -> Int? {
        var i = start + max(0, scanned - 3)
        while i + 3 < buffer.count {
            if buffer[i] == 0x0D && buffer[i + 1] == 0x0A && buffer[i + 2] == 0x0D && buffer[i + 3] == 0x0A {
                return i + 4
            }
            i += 1
        }
        scanned = buffer.count - start
        return nil
    }

    private func parseHead(_ bytes: ArraySlice<UInt8>) -> Result<Head, APIError> {
        let lines = splitLines(bytes)
        guard let lines else { return .failure(.badRequest("bare CR or LF in the request head; lines end with CRLF")) }
        guard let requestLine = lines.first, !requestLine.isEmpty else {
            return .failure(.badRequest("empty request line"))
        }
        // request-line = method SP request-target SP HTTP-version
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
            return .failure(.badRequest("malformed request line: expected 'METHOD /path HTTP/1.1'"))
        }
        guard parts[0].count <= 32, parts[0].allSatisfy(isTokenByte) else {
            return .failure(.badRequest("invalid method"))
        }
        guard parts[1].first == UInt8(ascii: "/"), parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
              !parts[1].contains(UInt8(ascii: "#")) else {
            return .failure(.badRequest("invalid request target: expected an absolute path such as /vm"))
        }
        let version: HTTPVersion
        if parts[2].elementsEqual("HTTP/1.1".utf8) {
            version = .http11
        } else if parts[2].elementsEqual("HTTP/1.0".utf8) {
            version = .http10
        } else {
            return .failure(.badRequest("unsupported HTTP version: expected HTTP/1.1 or HTTP/1.0"))
        }
        let method = String(decoding: parts[0], as: UTF8.self)

        guard lines.count - 1 <= HTTPRequestParser.maxHeaders else {
            return .failure(APIError(status: 431, message: "more than \(HTTPRequestParser.maxHeaders) header fields"))
        }
        var headers: [HTTPHeader] = []
        var contentLength: Int?
        var connectionClose = false, connectionKeepAlive = false
        var expectContinue = false
        var sawHost = false
        for line in lines.dropFirst() {
            let header: HTTPHeader
            switch parseHeaderLine(line) {
            case .success(let parsed): header = parsed
            case .failure(let error): return .failure(error)
            }
            let name = header.name
            if asciiCaseInsensitiveEqual(name, "content-length") {
                guard contentLength == nil else { return .failure(.badRequest("more than one Content-Length header")) }
                guard let length = parseDecimal(header.value) else {
                    return .failure(.badRequest("invalid Content-Length '\(printable(header.value))'"))
                }
                guard length <= maxBodyBytes else {
                    return .failure(APIError(status: 413, message: "request body of \(length) bytes is larger than the limit of \(maxBodyBytes)"))
                }
                contentLength = length
            } else if asciiCaseInsensitiveEqual(name, "transfer-encoding") {
                if listContains(header.value, "chunked") {
                    return .failure(APIError(status: 411, message: "chunked transfer encoding is not supported; send the body with a Content-Length"))
                }
                return .failure(APIError(status: 400, message: "Transfer-Encoding is not supported; send the body with a Content-Length"))
            } else if asciiCaseInsensitiveEqual(name, "connection") {
                if listContains(header.value, "close") { connectionClose = true }
                if listContains(header.value, "keep-alive") { connectionKeepAlive = true }
            } else if asciiCaseInsensitiveEqual(name, "expect") {
                guard asciiCaseInsensitiveEqual(header.value, "100-continue") else {
                    return .failure(APIError(status: 417, message: "unsupported Expect '\(printable(header.value))'"))
                }
                expectContinue = version == .http11
            } else if asciiCaseInsensitiveEqual(name, "host") {
                guard !sawHost else { return .failure(.badRequest("more than one Host header")) }
                sawHost = true
            }
            headers.append(header)
        }
        if contentLength == nil, method == "PUT" || method == "PATCH" || method == "POST" {
            return .failure(APIError(status: 411, message: "\(method) needs a Content-Length header"))
        }
        let keepAlive = version == .http11 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        return .success(Head(method: method, target: String(decoding: parts[1], as: UTF8.self), version: version,
                             headers: headers, contentLength: contentLength ?? 0, keepAlive: keepAlive,
                             expectContinue: expectContinue && (contentLength ?? 0) > 0))
    }
}

// MARK: - responses

/// A response: the server builds and serializes these; the client parser produces them.
public struct HTTPResponse: Equatable {
    public var status: Int
    public var reason: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]

    public init(status: Int, reason: String? = nil, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.reason = reason ?? HTTPResponse.reasonPhrase(status)
        self.headers = headers
        self.body = body
    }

    /// 204 No Content: Firecracker's answer to a successful PUT or PATCH.
    public static func noContent() -> HTTPResponse { HTTPResponse(status: 204) }

    /// A JSON body with Content-Type: application/json.
    public static func json(_ value: JSONValue, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: [HTTPHeader(name: "Content-Type", value: "application/json")],
                     body: value.serializedBytes())
    }

    /// The interim response to `Expect: 100-continue`.
    public static let continueBytes: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The first header of that name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        for header in headers where asciiCaseInsensitiveEqual(header.name, name) { return header.value }
        return nil
    }

    /// The body as text (lossy for invalid UTF-8).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The wire form: status line with reason phrase, the stored headers, Content-Type:
    /// application/json when there is a body and none was set, Content-Length (except for
    /// 1xx and 204), Connection: keep-alive or close, then the body.
    public func serialize(keepAlive: Bool) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason)\r\n"
        var hasContentType = false
        for header in headers {
            if asciiCaseInsensitiveEqual(header.name, "content-length") ||
                asciiCaseInsensitiveEqual(header.name, "connection") { continue }
            if asciiCaseInsensitiveEqual(header.name, "content-type") { hasContentType = true }
            text += "\(header.name): \(header.value)\r\n"
        }
        let bodyAllowed = status >= 200 && status != 204 && status != 304
        if bodyAllowed {
            if !body.isEmpty && !hasContentType { text += "Content-Type: application/json\r\n" }
            text += "Content-Length: \(body.count)\r\n"
        }
        text += keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n"
        text += "\r\n"
        var bytes = Array(text.utf8)
        if bodyAllowed { bytes.append(contentsOf: body) }
        return bytes
    }

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return status >= 200 && status < 300 ? "OK" : "Error"
        }
    }
}

/// What the response parser says after being fed.
public enum HTTPResponseParseResult: Equatable {
    case needMore
    case response(HTTPResponse)
    case error(SwiftletError)
}

/// Incremental HTTP/1.x response parser for the client side. The body is framed by
/// Content-Length; without one, by the end of the stream (call `finish()` at EOF).
/// 1xx interim responses are skipped. Chunked bodies are refused (the server never sends them).
public struct HTTPResponseParser {
    public static let maxHeadBytes = 16 * 1024
    public let maxBodyBytes: Int

    private var buffer: [UInt8] = []
    private var start = 0
    private var pending: (status: Int, reason: String, headers: [HTTPHeader], length: Int?)?
    private var ended = false
    private var failure: SwiftletError?

    public init(maxBodyBytes: Int = 1 << 20) { self.maxBodyBytes = maxBodyBytes }

    public mutating func feed(_ bytes: [UInt8]) { buffer.append(contentsOf: bytes) }
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) { buffer.append(contentsOf: bytes) }

    /// The peer closed the connection: a body without Content-Length ends here.
    public mutating func finish() { ended = true }

    public mutating func next() -> HTTPResponseParseResult {
        if let failure { return .error(failure) }
        while pending == nil {
            var end: Int?
            var i = start
            while i + 3 < buffer.count {
                if buffer[i] == 0x0D && buffer[i + 1] == 0x0A && buffer[i + 2] == 0x0D && buffer[i + 3] == 0x0A {
                    end = i + 4
                    break
                }
                i += 1
            }
            guard let end else {
                if buffer.count - start > HTTPResponseParser.maxHeadBytes { return fail("response head is too long") }
                if ended {
                    return fail(buffer.count == start ? "connection closed before a response" : "connection closed in the middle of a response head")
                }
                return .needMore
            }
            switch parseResponseHead(buffer[start..<(end - 4)]) {
            case .failure(let error):
                failure = error
                return .error(error)
            case .success(let head):
                start = end
                if head.status < 200 { continue }  // 100 Continue and friends
                pending = head
            }
        }
        guard let head = pending else { return .needMore }
        let available = buffer.count - start
        let length: Int
        if let declared = head.length {
            guard available >= declared else {
                return ended ? fail("connection closed before the end of the response body") : .needMore
            }
            length = declared
        } else {
            guard ended else {
                if available > maxBodyBytes { return fail("response body is larger than \(maxBodyBytes) bytes") }
                return .needMore
            }
            length = available
        }
        let body = Array(buffer[start..<(start + length)])
        start += length
        pending = nil
        if start == buffer.count {
            buffer.removeAll()
            start = 0
        }
        return .response(HTTPResponse(status: head.status, reason: head.reason, headers: head.headers, body: body))
    }

    private mutating func fail(_ message: String) -> HTTPResponseParseResult {
        let error = SwiftletError.invalidArgument("malformed HTTP response: \(message)")
        failure = error
        return .error(error)
    }

    private func parseResponseHead(_ bytes: ArraySlice<UInt8>)
        -> Result<(status: Int, reason: String, headers: [HTTPHeader], length: Int?), SwiftletError> {
        func bad(_ message: String) -> Result<(status: Int, reason: String, headers: [HTTPHeader], length: Int?), SwiftletError> {
            .failure(.invalidArgument("malformed HTTP response: \(message)"))
        }
        guard let lines = splitLines(bytes), let statusLine = lines.first else { return bad("bad line endings") }
        // status-line = HTTP-version SP 3DIGIT SP [reason-phrase]
        guard statusLine.count >= 12,
              statusLine.starts(with: "HTTP/1.".utf8),
              statusLine[statusLine.startIndex + 7] == UInt8(ascii: "0") || statusLine[statusLine.startIndex + 7] == UInt8(ascii: "1"),
              statusLine[statusLine.startIndex + 8] == 0x20 else { return bad("invalid status line") }
        let digits = statusLine[(statusLine.startIndex + 9)..<(statusLine.startIndex + 12)]
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return bad("invalid status code") }
        let status = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard status >= 100 else { return bad("invalid status code") }
        var reason = ""
        if statusLine.count > 12 {
            guard statusLine[statusLine.startIndex + 12] == 0x20 else { return bad("invalid status line") }
            reason = String(decoding: statusLine[(statusLine.startIndex + 13)...], as: UTF8.self)
        }
        var headers: [HTTPHeader] = []
        var length: Int?
        for line in lines.dropFirst() {
            switch parseHeaderLine(line) {
            case .failure(let error): return bad(error.message)
            case .success(let header):
                if asciiCaseInsensitiveEqual(header.name, "content-length") {
                    guard length == nil, let value = parseDecimal(header.value) else { return bad("invalid Content-Length") }
                    guard value <= maxBodyBytes else { return bad("response body is larger than \(maxBodyBytes) bytes") }
                    length = value
                } else if asciiCaseInsensitiveEqual(header.name, "transfer-encoding") {
                    return bad("Transfer-Encoding is not supported")
                }
                headers.append(header)
            }
        }
        if status == 204 || status == 304 { length = 0 }
        return .success((status: status, reason: reason, headers: headers, length: length))
    }
}

// MARK: - shared helpers

/// The lines of a head (without the final CRLF); nil if a CR or LF appears other than as CRLF.
func splitLines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>]? {
    var lines: [ArraySlice<UInt8>] = []
    var lineStart = bytes.startIndex
    var i = bytes.startIndex
    while i < bytes.endIndex {
        let byte = bytes[i]
        if byte == 0x0D {
            guard i + 1 < bytes.endIndex, bytes[i + 1] == 0x0A else { return nil }
            lines.append(bytes[lineStart..<i])
            i += 2
            lineStart = i
        } else if byte == 0x0A {
            return nil
        } else {
            i += 1
        }
    }
    lines.append(bytes[lineStart..<bytes.endIndex])
    return lines
}

/// `field-name ":" OWS field-value OWS`, RFC 9110 5: name is a token, no whitespace before the
/// colon, no obsolete folding, value bytes are HTAB, SP, VCHAR or obs-text.
func parseHeaderLine(_ line: ArraySlice<UInt8>) -> Result<HTTPHeader, APIError> {
    guard let first = line.first else { return .failure(.badRequest("empty header line")) }
    if first == 0x20 || first == 0x09 {
        return .failure(.badRequest("obsolete header line folding is not allowed"))
    }
    guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
        return .failure(.badRequest("header line without ':'"))
    }
    let name = line[line.startIndex..<colon]
    guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
        return .failure(.badRequest("invalid header name '\(printable(String(decoding: name, as: UTF8.self)))'"))
    }
    var valueStart = colon + 1
    var valueEnd = line.endIndex
    while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
    while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
    let value = line[valueStart..<valueEnd]
    guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
        return .failure(.badRequest("control character in the value of header '\(String(decoding: name, as: UTF8.self))'"))
    }
    return .success(HTTPHeader(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self)))
}

/// RFC 9110 tchar.
func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
         UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
         UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}

/// A non-negative decimal of at most 18 digits (so it cannot overflow); nil otherwise.
func parseDecimal(_ text: String) -> Int? {
    guard !text.utf8.isEmpty, text.utf8.count <= 18 else { return nil }
    var value = 0
    for byte in text.utf8 {
        guard byte >= 0x30 && byte <= 0x39 else { return nil }
        value = value * 10 + Int(byte - 0x30)
    }
    return value
}

func asciiLower(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 0x20 : byte
}

/// ASCII case-insensitive equality (header names and tokens are ASCII).
func asciiCaseInsensitiveEqual(_ a: String, _ b: String) -> Bool {
    a.utf8.count == b.utf8.count && a.utf8.elementsEqual(b.utf8, by: { asciiLower($0) == asciiLower($1) })
}

/// Whether a comma-separated header list holds `token` (case-insensitive, OWS trimmed).
func listContains(_ list: String, _ token: String) -> Bool {
    let bytes = Array(list.utf8)
    var elementStart = 0
    while elementStart <= bytes.count {
        var elementEnd = elementStart
        while elementEnd < bytes.count, bytes[elementEnd] != UInt8(ascii: ",") { elementEnd += 1 }
        var lo = elementStart, hi = elementEnd
        while lo < hi, bytes[lo] == 0x20 || bytes[lo] == 0x09 { lo += 1 }
        while hi > lo, bytes[hi - 1] == 0x20 || bytes[hi - 1] == 0x09 { hi -= 1 }
        if hi - lo == token.utf8.count,
           bytes[lo..<hi].elementsEqual(token.utf8, by: { asciiLower($0) == asciiLower($1) }) { return true }
        elementStart = elementEnd + 1
    }
    return false
}

/// A header value or JSON key shortened and stripped to printable ASCII for an error message.
func printable(_ text: String) -> String {
    var bytes: [UInt8] = []
    for byte in text.utf8 {
        if bytes.count >= 64 {
            bytes.append(contentsOf: "...".utf8)
            break
        }
        bytes.append(byte >= 0x20 && byte < 0x7F ? byte : UInt8(ascii: "?"))
    }
    return String(decoding: bytes, as: UTF8.self)
}
