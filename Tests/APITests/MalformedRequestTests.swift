import XCTest
@testable import API
import SwiftletCore

/// A table of malformed or refused requests. Each must end in a 4xx (from the parser or the
/// router), or, for input that is merely incomplete, in need-more within the parser's limits;
/// none may crash; and the parser that saw the input still does the right thing with a good
/// request that follows on its connection.
final class MalformedRequestTests: XCTestCase {
    enum Expect { case clientError, needMore }

    struct Case {
        let name: String
        let bytes: [UInt8]
        let state: InstanceState
        let expect: Expect
        /// When set, the exact status.
        let status: Int?
    }

    static func c(_ name: String, _ text: String, state: InstanceState = .notStarted, status: Int? = nil) -> Case {
        Case(name: name, bytes: Array(text.utf8), state: state, expect: .clientError, status: status)
    }

    static func raw(_ name: String, _ bytes: [UInt8], status: Int? = nil) -> Case {
        Case(name: name, bytes: bytes, state: .notStarted, expect: .clientError, status: status)
    }

    static func partial(_ name: String, _ text: String) -> Case {
        Case(name: name, bytes: Array(text.utf8), state: .notStarted, expect: .needMore, status: nil)
    }

    static func put(_ path: String, _ body: String) -> String { httpRequest("PUT", path, body) }
    static func boot(_ body: String) -> String { httpRequest("PUT", "/boot-source", body) }
    static func machine(_ body: String) -> String { httpRequest("PUT", "/machine-config", body) }
    static func actions(_ body: String) -> String { httpRequest("PUT", "/actions", body) }
    static func vm(_ body: String) -> String { httpRequest("PATCH", "/vm", body) }

    static let bigBody = String(repeating: " ", count: 70_000) + "{}"

    static let cases: [Case] = [
        // --- bad JSON of many kinds
        c("empty body", "PUT /actions HTTP/1.1\r\nContent-Length: 0\r\n\r\n", status: 400),
        c("whitespace body", actions("   \n"), status: 400),
        c("truncated object", actions(#"{"action_type": "InstanceStart""#), status: 400),
        c("missing colon", actions(#"{"action_type" "InstanceStart"}"#), status: 400),
        c("single quotes", actions(#"{'action_type': 'InstanceStart'}"#), status: 400),
        c("bare key", actions(#"{action_type: "InstanceStart"}"#), status: 400),
        c("trailing comma object", actions(#"{"action_type": "InstanceStart",}"#), status: 400),
        c("trailing garbage", actions(#"{"action_type": "InstanceStart"} x"#), status: 400),
        c("two objects", actions(#"{"action_type": "InstanceStart"}{}"#), status: 400),
        c("comment", actions(#"{/* hi */ "action_type": "InstanceStart"}"#), status: 400),
        c("unterminated string", actions(#"{"action_type": "InstanceStart}"#), status: 400),
        c("bad escape", actions(#"{"action_type": "Instance\qStart"}"#), status: 400),
        c("short unicode escape", actions(#"{"action_type": "\u12"}"#), status: 400),
        c("lone high surrogate", actions(#"{"action_type": "\ud800"}"#), status: 400),
        c("lone low surrogate", actions(#"{"action_type": "\udc00"}"#), status: 400),
        c("raw newline in string", actions("{\"action_type\": \"Instance\nStart\"}"), status: 400),
        c("raw tab in string", actions("{\"action_type\": \"Instance\tStart\"}"), status: 400),
        c("duplicate key", actions(#"{"action_type": "InstanceStart", "action_type": "InstanceStart"}"#), status: 400),
        c("fraction", machine(#"{"vcpu_count": 1.5, "mem_size_mib": 128}"#), status: 400),
        c("exponent", machine(#"{"vcpu_count": 1, "mem_size_mib": 1e3}"#), status: 400),
        c("leading zero", machine(#"{"vcpu_count": 01, "mem_size_mib": 128}"#), status: 400),
        c("plus sign", machine(#"{"vcpu_count": +1, "mem_size_mib": 128}"#), status: 400),
        c("hex number", machine(#"{"vcpu_count": 0x1, "mem_size_mib": 128}"#), status: 400),
        c("int64 overflow", machine(#"{"vcpu_count": 1, "mem_size_mib": 99999999999999999999}"#), status: 400),
        c("NaN", machine(#"{"vcpu_count": NaN, "mem_size_mib": 128}"#), status: 400),
        c("deep nesting", actions(String(repeating: "[", count: 40) + String(repeating: "]", count: 40)), status: 400),
        c("deep object nesting", boot(String(repeating: "{\"a\":", count: 40) + "1" + String(repeating: "}", count: 40)), status: 400),
        raw("invalid UTF-8 in string", Array(boot("{\"kernel_image_path\": \"/k\u{1}\"}").utf8).map { $0 == 1 ? 0xFF : $0 }, status: 400),
        raw("overlong UTF-8", Array(boot("{\"kernel_image_path\": \"/k\u{1}\u{2}\"}").utf8).map { $0 == 1 ? 0xC0 : ($0 == 2 ? 0xAF : $0) }, status: 400),
        raw("encoded surrogate", Array(boot("{\"kernel_image_path\": \"\u{1}\u{2}\u{3}\"}").utf8).map { $0 == 1 ? 0xED : ($0 == 2 ? 0xA0 : ($0 == 3 ? 0x80 : $0)) }, status: 400),
        raw("BOM", Array(actions("\u{FEFF}{\"action_type\": \"InstanceStart\"}").utf8), status: 400),
        c("NUL in path", boot(#"{"kernel_image_path": "/k\u0000"}"#), status: 400),
        c("literal typo", actions(#"{"action_type": nul}"#), status: 400),
        c("capital True", machine(#"{"vcpu_count": 1, "mem_size_mib": 64, "smt": True}"#), status: 400),
        // --- not an object / wrong types
        c("array body", actions(#"["InstanceStart"]"#), status: 400),
        c("string body", actions(#""InstanceStart""#), status: 400),
        c("number body", machine("2"), status: 400),
        c("null body", boot("null"), status: 400),
        c("kernel path integer", boot(#"{"kernel_image_path": 1}"#), status: 400),
        c("kernel path null", boot(#"{"kernel_image_path": null}"#), status: 400),
        c("kernel path array", boot(#"{"kernel_image_path": ["/k"]}"#), status: 400),
        c("initrd object", boot(#"{"kernel_image_path": "/k", "initrd_path": {}}"#), status: 400),
        c("boot_args bool", boot(#"{"kernel_image_path": "/k", "boot_args": true}"#), status: 400),
        c("vcpu string", machine(#"{"vcpu_count": "2", "mem_size_mib": 128}"#), status: 400),
        c("mem bool", machine(#"{"vcpu_count": 2, "mem_size_mib": true}"#), status: 400),
        c("vcpu null", machine(#"{"vcpu_count": null, "mem_size_mib": 128}"#), status: 400),
        c("smt string", machine(#"{"vcpu_count": 2, "mem_size_mib": 128, "smt": "no"}"#), status: 400),
        c("dirty pages int", machine(#"{"vcpu_count": 2, "mem_size_mib": 128, "track_dirty_pages": 1}"#), status: 400),
        c("action_type int", actions(#"{"action_type": 1}"#), status: 400),
        c("state array", vm(#"{"state": ["Paused"]}"#), state: .running, status: 400),
        // --- out of range, missing, unknown
        c("vcpu zero", machine(#"{"vcpu_count": 0, "mem_size_mib": 128}"#), status: 400),
        c("vcpu negative", machine(#"{"vcpu_count": -1, "mem_size_mib": 128}"#), status: 400),
        c("vcpu too many", machine(#"{"vcpu_count": \#(VMConfig.maxCPUs + 1), "mem_size_mib": 128}"#), status: 400),
        c("vcpu huge", machine(#"{"vcpu_count": 9223372036854775807, "mem_size_mib": 128}"#), status: 400),
        c("mem too small", machine(#"{"vcpu_count": 1, "mem_size_mib": 1}"#), status: 400),
        c("mem zero", machine(#"{"vcpu_count": 1, "mem_size_mib": 0}"#), status: 400),
        c("mem negative", machine(#"{"vcpu_count": 1, "mem_size_mib": -128}"#), status: 400),
        c("mem over 1 TiB", machine(#"{"vcpu_count": 1, "mem_size_mib": 1048577}"#), status: 400),
        c("smt true", machine(#"{"vcpu_count": 2, "mem_size_mib": 128, "smt": true}"#), status: 400),
        c("missing vcpu", machine(#"{"mem_size_mib": 128}"#), status: 400),
        c("missing mem", machine(#"{"vcpu_count": 1}"#), status: 400),
        c("empty machine", machine("{}"), status: 400),
        c("missing kernel", boot(#"{"boot_args": "x"}"#), status: 400),
        c("empty kernel", boot(#"{"kernel_image_path": ""}"#), status: 400),
        c("empty initrd", boot(#"{"kernel_image_path": "/k", "initrd_path": ""}"#), status: 400),
        c("unknown boot field", boot(#"{"kernel_image_path": "/k", "kernel": "/k"}"#), status: 400),
        c("unknown machine field", machine(#"{"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "T2"}"#), status: 400),
        c("field case", machine(#"{"VCPU_COUNT": 1, "mem_size_mib": 128}"#), status: 400),
        c("empty actions", actions("{}"), status: 400),
        c("unknown action", actions(#"{"action_type": "FlushMetrics"}"#), status: 400),
        c("action case", actions(#"{"action_type": "instancestart"}"#), status: 400),
        c("action extra field", actions(#"{"action_type": "InstanceStart", "force": true}"#), status: 400),
        c("unknown vm state", vm(#"{"state": "Stopped"}"#), state: .running, status: 400),
        c("missing vm state", vm("{}"), state: .running, status: 400),
        c("vm extra field", vm(#"{"state": "Paused", "x": 1}"#), state: .running, status: 400),
        // --- wrong lifecycle state
        c("boot-source after start", boot(#"{"kernel_image_path": "/k"}"#), state: .running, status: 400),
        c("machine-config after start", machine(#"{"vcpu_count": 1, "mem_size_mib": 128}"#), state: .paused, status: 400),
        c("InstanceStart twice", actions(#"{"action_type": "InstanceStart"}"#), state: .running, status: 400),
        c("ctrl-alt-del before start", actions(#"{"action_type": "SendCtrlAltDel"}"#), status: 400),
        c("pause before start", vm(#"{"state": "Paused"}"#), status: 400),
        c("resume before start", vm(#"{"state": "Resumed"}"#), status: 400),
        // --- bad paths and methods
        c("unknown path", httpRequest("GET", "/mmds"), status: 404),
        c("unknown nested path", httpRequest("PUT", "/vm/config/x", "{}"), status: 404),
        c("trailing slash", httpRequest("PUT", "/actions/", #"{"action_type": "InstanceStart"}"#), status: 404),
        c("double slash", httpRequest("GET", "//"), status: 404),
        c("percent-encoded path", httpRequest("GET", "/vm%2Fconfig"), status: 404),
        c("dot segments", httpRequest("GET", "/vm/../vm/config"), status: 404),
        c("GET boot-source", httpRequest("GET", "/boot-source"), status: 405),
        c("POST actions", httpRequest("POST", "/actions", #"{"action_type": "InstanceStart"}"#), status: 405),
        c("PUT vm", httpRequest("PUT", "/vm", #"{"state": "Paused"}"#), state: .running, status: 405),
        c("DELETE root", httpRequest("DELETE", "/"), status: 405),
        c("PATCH machine-config after start", httpRequest("PATCH", "/machine-config", #"{"vcpu_count": 1}"#), state: .running, status: 400),
        c("GET metrics", httpRequest("GET", "/metrics"), status: 405),
        c("FlushMetrics before start", actions(#"{"action_type": "FlushMetrics"}"#), status: 400),
        c("lowercase method", httpRequest("get", "/"), status: 405),
        c("HEAD root", httpRequest("HEAD", "/"), status: 405),
        c("invalid method chars", "G(T / HTTP/1.1\r\n\r\n", status: 400),
        c("method too long", String(repeating: "A", count: 40) + " / HTTP/1.1\r\n\r\n", status: 400),
        c("asterisk target", "OPTIONS * HTTP/1.1\r\n\r\n", status: 400),
        c("absolute-form target", "GET http://localhost/ HTTP/1.1\r\n\r\n", status: 400),
        c("relative target", "GET vm/config HTTP/1.1\r\n\r\n", status: 400),
        c("fragment in target", "GET /#x HTTP/1.1\r\n\r\n", status: 400),
        raw("non-ASCII target", Array("GET /\u{e9} HTTP/1.1\r\n\r\n".utf8), status: 400),
        c("missing version", "GET /\r\n\r\n", status: 400),
        c("HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", status: 400),
        c("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", status: 400),
        c("lowercase version", "GET / http/1.1\r\n\r\n", status: 400),
        c("version garbage", "GET / HTTP/1.1x\r\n\r\n", status: 400),
        c("double space", "GET  / HTTP/1.1\r\n\r\n", status: 400),
        c("tab separator", "GET\t/ HTTP/1.1\r\n\r\n", status: 400),
        c("extra token", "GET / HTTP/1.1 extra\r\n\r\n", status: 400),
        c("leading space", " GET / HTTP/1.1\r\n\r\n", status: 400),
        c("binary garbage", "\u{1}\u{2}\u{3}\r\n\r\n", status: 400),
        c("TLS hello", "\u{16}\u{3}\u{1}\u{0}\u{a5}\u{1}\r\n\r\n", status: 400),
        // --- header abuse
        c("header without colon", "GET / HTTP/1.1\r\nHost localhost\r\n\r\n", status: 400),
        c("space before colon", "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n", status: 400),
        c("empty header name", "GET / HTTP/1.1\r\n: value\r\n\r\n", status: 400),
        c("bad header name", "GET / HTTP/1.1\r\nX(y): 1\r\n\r\n", status: 400),
        c("obs-fold", "GET / HTTP/1.1\r\nX-A: 1\r\n  continued\r\n\r\n", status: 400),
        c("NUL in header value", "GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n", status: 400),
        c("bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n\r\n\r\n", status: 400),
        c("bare CR in header", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", status: 400),
        c("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        c("duplicate Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", status: 400),
        c("conflicting Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r\n{} ", status: 400),
        c("negative Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length: -1\r\n\r\n", status: 400),
        c("plus Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}", status: 400),
        c("hex Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length: 0x2\r\n\r\n{}", status: 400),
        c("empty Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length:\r\n\r\n", status: 400),
        c("list Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}", status: 400),
        c("overflowing Content-Length", "PUT /actions HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", status: 400),
        c("Content-Length with space inside", "PUT /actions HTTP/1.1\r\nContent-Length: 1 0\r\n\r\n", status: 400),
        c("chunked", "PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", status: 411),
        c("chunked plus length", "PUT /actions HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", status: 411),
        c("PUT without length", "PUT /actions HTTP/1.1\r\n\r\n{\"action_type\": \"InstanceStart\"}", status: 411),
        c("PATCH without length", "PATCH /vm HTTP/1.1\r\n\r\n", status: 411),
        c("bad Expect", "PUT /actions HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}", status: 417),
        c("65 headers", "GET / HTTP/1.1\r\n" + (0..<65).map { "X-\($0): 1\r\n" }.joined() + "\r\n", status: 431),
        c("1000 headers", "GET / HTTP/1.1\r\n" + (0..<1000).map { "X-\($0): 1\r\n" }.joined() + "\r\n", status: 431),
        c("huge header value", "GET / HTTP/1.1\r\nX-A: " + String(repeating: "a", count: 9000) + "\r\n\r\n", status: 431),
        c("huge request line", "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n\r\n", status: 431),
        c("huge head, never terminated", "GET / HTTP/1.1\r\nX-A: " + String(repeating: "a", count: 20_000), status: 431),
        c("endless empty-looking lines", "GET / HTTP/1.1\r\n" + String(repeating: "X: \r\n", count: 2000), status: 431),
        // --- huge and truncated bodies
        c("declared body over limit", "PUT /actions HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", status: 413),
        c("huge declared body", "PUT /actions HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", status: 413),
        c("huge actual body", put("/actions", bigBody), status: 413),
        c("body shorter than declared, then junk request", "PUT /actions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}GET / HTTP/1.1\r\n\r\n", status: 400),
        c("body longer than declared", "PUT /actions HTTP/1.1\r\nContent-Length: 1\r\n\r\n{\"action_type\": \"InstanceStart\"}", status: 400),
        c("GET with junk after", "GET / HTTP/1.1\r\n\r\nthis is not http\r\n\r\n", status: 400),
        // --- incomplete input: need more, within limits
        partial("nothing", ""),
        partial("half a request line", "GET /vm/con"),
        partial("request line only", "GET / HTTP/1.1\r\n"),
        partial("headers without blank line", "GET / HTTP/1.1\r\nHost: x\r\n"),
        partial("blank line half sent", "GET / HTTP/1.1\r\nHost: x\r\n\r"),
        partial("slowloris 8000 bytes", "GET / HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 1000)),
        partial("truncated body", "PUT /actions HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"action_type\""),
        partial("body never sent", "PUT /actions HTTP/1.1\r\nContent-Length: 65536\r\n\r\n"),
        partial("only CRLFs", String(repeating: "\r\n", count: 5000)),
    ]

    /// Cases whose bytes run on past the refused request into the start of another.
    static let runOnPastTheRefusal: Set<String> = ["body longer than declared"]

    func outcome(_ results: [HTTPParseResult], state: InstanceState) -> (status: Int?, needMore: Bool) {
        for result in results {
            switch result {
            case .request(let request):
                do {
                    let action = try APIRouter.route(request, state: state)
                    _ = action  // a good request in the middle is fine (pipelined junk after it)
                } catch {
                    return (error.status, false)
                }
            case .error(let error): return (error.status, false)
            case .needMore, .sendContinue: continue
            }
        }
        return (nil, true)
    }

    func testTableIsLargeEnough() {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 100)
        XCTAssertEqual(Set(Self.cases.map(\.name)).count, Self.cases.count, "case names are unique")
    }

    func testMalformedRequests() {
        let good = Array(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 256}"#).utf8)
        var servedAfterwards = 0, refusedAfterwards = 0
        for testCase in Self.cases {
            // All at once.
            var parser = HTTPRequestParser()
            parser.feed(testCase.bytes)
            let results = drain(&parser)
            let whole = outcome(results, state: testCase.state)
            check(testCase, whole, "fed whole")
            XCTAssertLessThanOrEqual(parser.bufferedByteCount, HTTPRequestParser.maxHeadBytes + HTTPRequestParser.defaultMaxBodyBytes,
                                     testCase.name)

            // In small chunks, parsing after each: the same outcome, and the buffer stays bounded.
            var chunked = HTTPRequestParser()
            var chunkResults: [HTTPParseResult] = []
            var offset = 0
            var chunkSize = 1
            outer: while offset < testCase.bytes.count {
                let end = min(offset + chunkSize, testCase.bytes.count)
                chunked.feed(Array(testCase.bytes[offset..<end]))
                offset = end
                chunkSize = chunkSize % 97 + 7
                for result in drain(&chunked) {
                    chunkResults.append(result)
                    if case .error = result { break outer }
                }
                XCTAssertLessThanOrEqual(chunked.bufferedByteCount,
                                         HTTPRequestParser.maxHeadBytes + HTTPRequestParser.defaultMaxBodyBytes + 200, testCase.name)
            }
            if chunkResults.isEmpty { chunkResults = [chunked.next()] }
            let pieces = outcome(chunkResults, state: testCase.state)
            check(testCase, pieces, "fed in chunks")

            // A good request next on the same parser, as on the server's connection. After a
            // parser error the server answers it and closes, so the parser must keep answering
            // that error: nothing after malformed input may be read as a request. After a
            // refused request the connection stays open: the request was consumed whole, body
            // and all, and the good request must parse and route. Incomplete input has no next
            // request (the good bytes would continue it), nor has a case that runs on past its
            // refused request into the start of another.
            if case .error(let error)? = results.last {
                parser.feed(good)
                let next = parser.next()
                if case .request(let request) = next {
                    XCTFail("\(testCase.name): the parser read on after its error: \(request.method) \(request.target) came out")
                } else {
                    XCTAssertEqual(next, .error(error), "\(testCase.name): the parser did not keep its error")
                }
                refusedAfterwards += 1
            } else if testCase.expect == .needMore && !parser.isIdle || Self.runOnPastTheRefusal.contains(testCase.name) {
                XCTAssertFalse(parser.isIdle, "\(testCase.name): a partial request is buffered")
            } else {
                XCTAssertTrue(parser.isIdle, "\(testCase.name): \(parser.bufferedByteCount) bytes left over after the refused request")
                parser.feed(good)
                let next = parser.next()
                guard case .request(let request) = next else {
                    XCTFail("\(testCase.name): the good request on the same parser gave \(next)")
                    continue
                }
                XCTAssertEqual(try? APIRouter.route(request, state: .notStarted), .configureMachine(MachineConfig(vcpuCount: 2, memSizeMiB: 256)),
                               "\(testCase.name): the good request on the same parser")
                XCTAssertTrue(parser.isIdle, "\(testCase.name): nothing left over after the good request")
                servedAfterwards += 1
            }
        }
        // Both kinds of afterwards are exercised: refused requests that keep the connection,
        // and parser errors that end it.
        XCTAssertGreaterThanOrEqual(servedAfterwards, 40, "cases after which the good request was served")
        XCTAssertGreaterThanOrEqual(refusedAfterwards, 40, "cases after which the parser kept its error")
    }

    func check(_ testCase: Case, _ result: (status: Int?, needMore: Bool), _ how: String) {
        switch testCase.expect {
        case .needMore:
            XCTAssertTrue(result.needMore, "\(testCase.name) (\(how)): expected need-more, got \(String(describing: result.status))")
        case .clientError:
            guard let status = result.status else {
                return XCTFail("\(testCase.name) (\(how)): expected a 4xx, got need-more or success")
            }
            XCTAssertTrue((400..<500).contains(status), "\(testCase.name) (\(how)): status \(status)")
            if let expected = testCase.status {
                XCTAssertEqual(status, expected, "\(testCase.name) (\(how))")
            }
        }
    }

    func testFaultResponsesAreValidJSON() {
        for testCase in Self.cases where testCase.expect == .clientError {
            var parser = HTTPRequestParser()
            parser.feed(testCase.bytes)
            var error: APIError?
            for result in drain(&parser) {
                if case .error(let e) = result { error = e }
                if case .request(let r) = result, error == nil {
                    do { _ = try APIRouter.route(r, state: testCase.state) } catch let e { error = e; break }
                }
            }
            guard let error else { XCTFail(testCase.name); continue }
            let wire = error.response().serialize(keepAlive: false)
            var client = HTTPResponseParser()
            client.feed(wire)
            guard case .response(let response) = client.next() else { XCTFail(testCase.name); continue }
            XCTAssertEqual(response.status, error.status)
            guard let body = try? JSONValue.parse(response.body), case .string(let message)? = body["fault_message"] else {
                XCTFail("\(testCase.name): fault body \(response.bodyText)")
                continue
            }
            XCTAssertFalse(message.isEmpty, testCase.name)
        }
    }
}
