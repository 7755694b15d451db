import XCTest
@testable import API
import SwiftletCore

/// The lines the API server logs: Firecracker's words (its tests and operators grep for
/// them), and nothing a client sends can break a line.
final class APIRequestLogTests: XCTestCase {
    func request(_ method: String, _ target: String, _ body: String = "") -> HTTPRequest {
        HTTPRequest(method: method, target: target, body: Array(body.utf8))
    }

    func testReceivedLinesAreFirecrackers() {
        XCTAssertEqual(APIRequestLog.received(request("GET", "/")), #"The API server received a Get request on "/"."#)
        XCTAssertEqual(APIRequestLog.received(request("PUT", "/actions", #"{"action_type": "InstanceStart"}"#)),
                       #"The API server received a Put request on "/actions" with body "{\"action_type\": \"InstanceStart\"}"."#)
        XCTAssertEqual(APIRequestLog.received(request("PATCH", "/vm?x=1", "{}")),
                       #"The API server received a Patch request on "/vm" with body "{}"."#, "the path, without the query")
        XCTAssertEqual(APIRequestLog.received(request("BREW", "/pot")), #"The API server received a BREW request on "/pot"."#)
    }

    func testControlCharactersAndBadUTF8CannotBreakTheLine() {
        let line = APIRequestLog.received(request("PUT", "/drives/a\u{1b}b", "{\"x\": \"1\n2\r3\t\\\u{7f}\"}"))
        XCTAssertEqual(line, #"The API server received a Put request on "/drives/a\u{1b}b" with body "{\"x\": \"1\n2\r3\t\\\u{7f}\"}"."#)
        XCTAssertFalse(line.contains("\n") || line.contains("\r"))
        var bad = HTTPRequest(method: "PUT", target: "/logger")
        bad.body = [0x7B, 0xFF, 0x7D]
        XCTAssertEqual(APIRequestLog.received(bad), #"The API server received a Put request on "/logger" with body "inconvertible to UTF-8"."#)
    }

    func testALongBodyIsCutAndSaysSo() {
        let body = String(repeating: "é", count: 1000)   // 2000 bytes
        let line = APIRequestLog.received(request("PUT", "/mmds", body))
        XCTAssertTrue(line.hasSuffix(#"" (the first 1024 of 2000 bytes)."#), line)
        XCTAssertTrue(line.contains("\"" + String(repeating: "é", count: 512) + "\""), "cut between characters, at 1024 bytes")
    }

    func testAnswersAndTheirLevels() {
        XCTAssertEqual(APIRequestLog.level(forStatus: 204), .debug)
        XCTAssertEqual(APIRequestLog.level(forStatus: 200), .debug)
        XCTAssertEqual(APIRequestLog.level(forStatus: 400), .warning)
        XCTAssertEqual(APIRequestLog.level(forStatus: 404), .warning)
        XCTAssertEqual(APIRequestLog.level(forStatus: 500), .error)
        XCTAssertEqual(APIRequestLog.answered(method: "PUT", path: "/boot-source", .noContent(), microseconds: 42),
                       #"The API server answered the Put request on "/boot-source" with 204 No Content in 42 us."#)
        XCTAssertEqual(APIRequestLog.answered(method: "PUT", path: "/logger",
                                              APIError.badRequest("logger: cannot open /x: No such file or directory").response(),
                                              microseconds: 7),
                       "Received Error. Status code: 400 Bad Request. Message: logger: cannot open /x: No such file or directory")
        XCTAssertEqual(APIRequestLog.refused(APIError(status: 500, message: "disk on fire").response()),
                       "Received Error. Status code: 500 Internal Server Error. Message: disk on fire")
        XCTAssertEqual(APIRequestLog.refused(HTTPResponse(status: 503, body: Array("busy".utf8))),
                       "Received Error. Status code: 503 Service Unavailable. Message: busy", "a body that is not APIError's")
    }
}
