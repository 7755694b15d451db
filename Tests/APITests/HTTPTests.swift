import XCTest
@testable import API
import SwiftletCore

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Feeds everything, then collects results until needMore or an error.
func drain(_ parser: inout HTTPRequestParser) -> [HTTPParseResult] {
    var results: [HTTPParseResult] = []
    while true {
        let result = parser.next()
        results.append(result)
        switch result {
        case .needMore, .error: return results
        case .request, .sendContinue: continue
        }
    }
}

func parseAll(_ text: String) -> [HTTPParseResult] {
    var parser = HTTPRequestParser()
    parser.feed(bytes(text))
    return drain(&parser)
}

func requests(_ results: [HTTPParseResult]) -> [HTTPRequest] {
    results.compactMap { if case .request(let r) = $0 { return r } else { return nil } }
}

func errorStatus(_ results: [HTTPParseResult]) -> Int? {
    if case .error(let e) = results.last { return e.status }
    return nil
}

final class HTTPRequestParserTests: XCTestCase {
    func testSimpleGet() throws {
        let results = parseAll("GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n")
        XCTAssertEqual(results.count, 2)
        let request = try XCTUnwrap(requests(results).first)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.target, "/")
        XCTAssertEqual(request.path, "/")
        XCTAssertNil(request.query)
        XCTAssertEqual(request.version, .http11)
        XCTAssertEqual(request.headers, [HTTPHeader(name: "Host", value: "localhost"), HTTPHeader(name: "Accept", value: "*/*")])
        XCTAssertTrue(request.body.isEmpty)
        XCTAssertTrue(request.keepAlive)
        XCTAssertEqual(results.last, .needMore)
    }

    func testPutWithBodyAndQuery() throws {
        let body = #"{"vcpu_count": 2, "mem_size_mib": 512}"#
        let results = parseAll("PUT /machine-config?x=1 HTTP/1.1\r\ncontent-LENGTH: \(body.utf8.count)\r\nContent-Type: application/json\r\n\r\n\(body)")
        let request = try XCTUnwrap(requests(results).first)
        XCTAssertEqual(request.method, "PUT")
        XCTAssertEqual(request.path, "/machine-config")
        XCTAssertEqual(request.query, "x=1")
        XCTAssertEqual(request.body, bytes(body))
        XCTAssertEqual(request.header("CONTENT-TYPE"), "application/json")
        XCTAssertEqual(request.header("content-length"), "\(body.utf8.count)")
        XCTAssertNil(request.header("x-missing"))
    }

    func testHeaderWhitespaceIsTrimmed() throws {
        let request = try XCTUnwrap(requests(parseAll("GET / HTTP/1.1\r\nX-A:   spaced \t \r\nX-B:\r\n\r\n")).first)
        XCTAssertEqual(request.header("x-a"), "spaced")
        XCTAssertEqual(request.header("x-b"), "")
    }

    func testByteByByteFeeding() throws {
        let body = #"{"action_type": "InstanceStart"}"#
        let text = "PUT /actions HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        var parser = HTTPRequestParser()
        var got: HTTPRequest?
        for (i, byte) in bytes(text).enumerated() {
            parser.feed([byte])
            let result = parser.next()
            if i < text.utf8.count - 1 {
                XCTAssertEqual(result, .needMore, "at byte \(i)")
            } else if case .request(let r) = result {
                got = r
            }
        }
        XCTAssertEqual(got?.body, bytes(body))
        XCTAssertTrue(parser.isIdle)
    }

    func testPipelining() throws {
        let b1 = #"{"kernel_image_path": "/k"}"#
        let text = "PUT /boot-source HTTP/1.1\r\nContent-Length: \(b1.utf8.count)\r\n\r\n\(b1)"
            + "GET / HTTP/1.1\r\n\r\n"
            + "\r\n"  // a stray empty line between requests is ignored
            + "GET /vm/config HTTP/1.1\r\nConnection: close\r\n\r\n"
            + "GET /partial HTTP/1.1\r\n"
        var parser = HTTPRequestParser()
        parser.feed(bytes(text))
        let results = drain(&parser)
        let reqs = requests(results)
        XCTAssertEqual(reqs.map(\.path), ["/boot-source", "/", "/vm/config"])
        XCTAssertEqual(reqs.map(\.keepAlive), [true, true, false])
        XCTAssertEqual(reqs[0].body, bytes(b1))
        XCTAssertEqual(results.last, .needMore)
        XCTAssertFalse(parser.isIdle)
        parser.feed(bytes("\r\n"))
        XCTAssertEqual(requests(drain(&parser)).map(\.path), ["/partial"])
        XCTAssertTrue(parser.isIdle)
    }

    func testKeepAliveRules() throws {
        func keepAlive(_ head: String) -> Bool? { requests(parseAll(head + "\r\n")).first?.keepAlive }
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\n"), true)
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\nConnection: close\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.1\r\nConnection: upgrade\r\n"), true)
        XCTAssertEqual(keepAlive("GET / HTTP/1.0\r\n"), false)
        XCTAssertEqual(keepAlive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n"), true)
        XCTAssertEqual(keepAlive("GET / HTTP/1.0\r\nconnection: close\r\n"), false)
    }

    func testExpectContinue() throws {
        var parser = HTTPRequestParser()
        parser.feed(bytes("PUT /vm HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\n"))
        XCTAssertEqual(parser.next(), .sendContinue)
        XCTAssertEqual(parser.next(), .needMore)
        parser.feed(bytes(#"{"state": "Paused"} "#))
        guard case .request(let request) = parser.next() else { return XCTFail() }
        XCTAssertEqual(request.body.count, 20)
        // Body already there: no 100 Continue needed.
        var eager = HTTPRequestParser()
        eager.feed(bytes("PUT /vm HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"))
        guard case .request = eager.next() else { return XCTFail() }
        XCTAssertEqual(errorStatus(parseAll("PUT /vm HTTP/1.1\r\nExpect: something\r\nContent-Length: 2\r\n\r\n{}")), 417)
        XCTAssertEqual(String(decoding: HTTPResponse.continueBytes, as: UTF8.self), "HTTP/1.1 100 Continue\r\n\r\n")
    }

    func testLimits() {
        // Exactly at the head limit is fine.
        let prefix = "GET / HTTP/1.1\r\nX-Pad: "
        let pad = String(repeating: "a", count: HTTPRequestParser.maxHeadBytes - prefix.utf8.count - 4)
        XCTAssertEqual(requests(parseAll(prefix + pad + "\r\n\r\n")).count, 1)
        XCTAssertEqual(errorStatus(parseAll(prefix + pad + "a\r\n\r\n")), 431)
        // 64 headers are fine, 65 are not.
        let h64 = (0..<64).map { "X-\($0): v\r\n" }.joined()
        XCTAssertEqual(requests(parseAll("GET / HTTP/1.1\r\n" + h64 + "\r\n")).count, 1)
        XCTAssertEqual(errorStatus(parseAll("GET / HTTP/1.1\r\n" + h64 + "X-64: v\r\n\r\n")), 431)
        // Body limit.
        let big = String(repeating: " ", count: HTTPRequestParser.defaultMaxBodyBytes)
        XCTAssertEqual(requests(parseAll("PUT /vm HTTP/1.1\r\nContent-Length: \(big.utf8.count)\r\n\r\n" + big)).count, 1)
        XCTAssertEqual(errorStatus(parseAll("PUT /vm HTTP/1.1\r\nContent-Length: \(big.utf8.count + 1)\r\n\r\n")), 413)
    }

    func testSlowlorisStaysBounded() {
        var parser = HTTPRequestParser()
        parser.feed(bytes("GET / HTTP/1.1\r\n"))
        var status: Int?
        for i in 0..<10_000 {
            parser.feed(bytes("X-\(i): y\r\n"))
            let result = parser.next()
            if case .error(let error) = result { status = error.status; break }
            XCTAssertEqual(result, .needMore)
            XCTAssertLessThanOrEqual(parser.bufferedByteCount, HTTPRequestParser.maxHeadBytes + 16)
        }
        XCTAssertEqual(status, 431)
        // After the error the parser stays failed and drops further input.
        parser.feed(bytes("GET / HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(parser.bufferedByteCount, 0)
        if case .error(let error) = parser.next() { XCTAssertEqual(error.status, 431) } else { XCTFail() }
    }

    func testEmptyLinesAloneAreConsumed() {
        var parser = HTTPRequestParser()
        for _ in 0..<10_000 {
            parser.feed(bytes("\r\n"))
            XCTAssertEqual(parser.next(), .needMore)
        }
        XCTAssertEqual(parser.bufferedByteCount, 0)
    }

    func testMethodsWithoutLengthNeedOne() {
        XCTAssertEqual(errorStatus(parseAll("PUT /vm HTTP/1.1\r\n\r\n")), 411)
        XCTAssertEqual(errorStatus(parseAll("PATCH /vm HTTP/1.1\r\n\r\n")), 411)
        XCTAssertEqual(errorStatus(parseAll("PUT /vm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")), 411)
        XCTAssertEqual(errorStatus(parseAll("PUT /vm HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")), 400)
        if case .error(let e) = parseAll("PUT /vm HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").last {
            XCTAssertEqual(e.status, 411)
            XCTAssertTrue(e.message.contains("Content-Length"))
        } else { XCTFail() }
        // GET, DELETE without a length: an empty body.
        XCTAssertEqual(requests(parseAll("DELETE /vm HTTP/1.1\r\n\r\n")).first?.body, [])
    }

    func testClientRequestSerializerRoundTrip() throws {
        let body = bytes(#"{"state":"Paused"}"#)
        var parser = HTTPRequestParser()
        parser.feed(HTTPRequest.serializeClientRequest(method: "PATCH", target: "/vm", body: body))
        parser.feed(HTTPRequest.serializeClientRequest(method: "GET", target: "/", keepAlive: true))
        let reqs = requests(drain(&parser))
        XCTAssertEqual(reqs.count, 2)
        XCTAssertEqual(reqs[0].method, "PATCH")
        XCTAssertEqual(reqs[0].body, body)
        XCTAssertEqual(reqs[0].header("content-type"), "application/json")
        XCTAssertFalse(reqs[0].keepAlive)
        XCTAssertEqual(reqs[1].path, "/")
        XCTAssertTrue(reqs[1].keepAlive)
    }
}

final class HTTPResponseTests: XCTestCase {
    func text(_ response: HTTPResponse, keepAlive: Bool) -> String {
        String(decoding: response.serialize(keepAlive: keepAlive), as: UTF8.self)
    }

    func testNoContent() {
        XCTAssertEqual(text(.noContent(), keepAlive: true), "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n")
    }

    func testJSONBody() {
        let response = HTTPResponse.json(.object([("a", .integer(1))]))
        XCTAssertEqual(text(response, keepAlive: false),
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}")
    }

    func testFaultResponse() {
        let error = APIError(status: 405, message: "GET is not allowed", allow: "PUT")
        XCTAssertEqual(text(error.response(), keepAlive: true),
                       "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nAllow: PUT\r\nContent-Length: 38\r\nConnection: keep-alive\r\n\r\n{\"fault_message\":\"GET is not allowed\"}")
        XCTAssertEqual(APIError(status: 413, message: "x").description, "413 Content Too Large: x")
        XCTAssertEqual(HTTPResponse.reasonPhrase(431), "Request Header Fields Too Large")
        XCTAssertEqual(HTTPResponse.reasonPhrase(411), "Length Required")
    }

    func testEmptyBodyHasLengthZeroAndNoType() {
        XCTAssertEqual(text(HTTPResponse(status: 200), keepAlive: true),
                       "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
    }

    func testServerToClientRoundTrip() throws {
        let responses: [HTTPResponse] = [
            .noContent(),
            .json(APIRouter.instanceInfo(id: "vm0", state: .running, vmmVersion: "0.1.0")),
            APIError(status: 400, message: "bad \"thing\"").response(),
            HTTPResponse(status: 200),
        ]
        var parser = HTTPResponseParser()
        for response in responses { parser.feed(response.serialize(keepAlive: true)) }
        for expected in responses {
            guard case .response(let got) = parser.next() else { return XCTFail() }
            XCTAssertEqual(got.status, expected.status)
            XCTAssertEqual(got.reason, expected.reason)
            XCTAssertEqual(got.body, expected.body)
            XCTAssertEqual(got.header("content-type"), expected.header("content-type"))
        }
        XCTAssertEqual(parser.next(), .needMore)
    }

    func testResponseParserIncrementalAndInterim() throws {
        let wire = bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nhello")
        var parser = HTTPResponseParser()
        for byte in wire.dropLast() {
            parser.feed([byte])
            XCTAssertEqual(parser.next(), .needMore)
        }
        parser.feed([wire.last!])
        guard case .response(let response) = parser.next() else { return XCTFail() }
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(response.bodyText, "hello")
    }

    func testResponseParserBodyUntilClose() throws {
        var parser = HTTPResponseParser()
        parser.feed(bytes("HTTP/1.0 200 OK\r\n\r\nabc"))
        XCTAssertEqual(parser.next(), .needMore)
        parser.finish()
        guard case .response(let response) = parser.next() else { return XCTFail() }
        XCTAssertEqual(response.bodyText, "abc")
    }

    func testResponseParserErrors() {
        let bad = [
            "HTTP/2 200 OK\r\n\r\n", "HTTP/1.x 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "XTTP/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 200 OK\nX: y\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        ]
        for text in bad {
            var parser = HTTPResponseParser()
            parser.feed(bytes(text))
            guard case .error(let error) = parser.next() else { XCTFail(text); continue }
            XCTAssertTrue(error.description.hasPrefix("malformed HTTP response"))
        }
        var truncated = HTTPResponseParser()
        truncated.feed(bytes("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
        XCTAssertEqual(truncated.next(), .needMore)
        truncated.finish()
        guard case .error = truncated.next() else { return XCTFail() }
        var empty = HTTPResponseParser()
        empty.finish()
        guard case .error = empty.next() else { return XCTFail() }
        // 204 has no body even without Content-Length.
        var noContent = HTTPResponseParser()
        noContent.feed(bytes("HTTP/1.1 204 No Content\r\n\r\n"))
        guard case .response(let r) = noContent.next() else { return XCTFail() }
        XCTAssertEqual(r.status, 204)
        XCTAssertEqual(r.reason, "No Content")
    }
}
