import Foundation
import XCTest
@testable import API
import SwiftletCore

/// The audit trail's lines: their layout, the old -> new record of a change, and the writer.
final class AuditEventTests: XCTestCase {
    let time = "2026-11-24T09:15:02.123456789Z"
    let peer = PeerCredentials(pid: 4242, uid: 1000, gid: 100)

    func request(_ method: String, _ path: String, _ body: String = "") -> HTTPRequest {
        HTTPRequest(method: method, target: path, body: Array(body.utf8))
    }

    func testARequestLineSaysWhoWhatTheAnswerAndTheChange() {
        var config = VMConfig()
        let audited = AuditedRequest(request("PUT", "/machine-config"), peer: peer, config: config, state: .notStarted)
        config.cpus = 2
        config.memoryMiB = 32
        let new = AuditedRequest.resource("/machine-config", config: config, state: .notStarted)
        XCTAssertEqual(AuditEvent.apiRequest(audited, status: 204, new: new).line(time: time),
                       #"{"time":"2026-11-24T09:15:02.123456789Z","event":"api_request","peer":{"pid":4242,"uid":1000,"gid":100},"#
                       + #""method":"PUT","path":"/machine-config","status":204,"change":{"#
                       + #""old":{"vcpu_count":1,"mem_size_mib":256,"smt":false,"track_dirty_pages":false,"huge_pages":"None"},"#
                       + #""new":{"vcpu_count":2,"mem_size_mib":32,"smt":false,"track_dirty_pages":false,"huge_pages":"None"}}}"#)
        // A refused change changed nothing, and says nothing about it.
        XCTAssertEqual(AuditEvent.apiRequest(audited, status: 400, new: new).line(time: time),
                       #"{"time":"2026-11-24T09:15:02.123456789Z","event":"api_request","peer":{"pid":4242,"uid":1000,"gid":100},"#
                       + #""method":"PUT","path":"/machine-config","status":400}"#)
    }

    func testAnActionLineCarriesItsType() {
        var audited = AuditedRequest(request("PUT", "/actions"), peer: peer, config: VMConfig(), state: .running)
        XCTAssertNil(audited.old, "an action is not a resource")
        audited.actionType = APIAction.sendCtrlAltDel.actionType
        XCTAssertEqual(AuditEvent.apiRequest(audited, status: 204, new: nil).line(time: time),
                       #"{"time":"2026-11-24T09:15:02.123456789Z","event":"api_request","peer":{"pid":4242,"uid":1000,"gid":100},"#
                       + #""method":"PUT","path":"/actions","status":204,"action_type":"SendCtrlAltDel"}"#)
        XCTAssertEqual(APIAction.start.actionType, "InstanceStart")
        XCTAssertEqual(APIAction.flushMetrics.actionType, "FlushMetrics")
        XCTAssertNil(APIAction.pause.actionType)
        XCTAssertNil(AuditedRequest(request("GET", "/machine-config"), peer: peer, config: VMConfig(), state: .running).old,
                     "a GET changes nothing")
    }

    func testResourcesAsTheAPIShowsThem() throws {
        var config = VMConfig()
        XCTAssertEqual(AuditedRequest.resource("/boot-source", config: config, state: .notStarted), .object([]))
        XCTAssertEqual(AuditedRequest.resource("/drives/root", config: config, state: .notStarted), .null, "no such drive yet")
        XCTAssertEqual(AuditedRequest.resource("/network-interfaces/eth0", config: config, state: .notStarted), .null)
        XCTAssertEqual(AuditedRequest.resource("/vsock", config: config, state: .notStarted), .null)
        XCTAssertEqual(AuditedRequest.resource("/entropy", config: config, state: .notStarted), .null)
        XCTAssertEqual(AuditedRequest.resource("/logger", config: config, state: .notStarted), .null)
        XCTAssertEqual(AuditedRequest.resource("/metrics", config: config, state: .notStarted), .null)
        XCTAssertNil(AuditedRequest.resource("/actions", config: config, state: .notStarted))
        XCTAssertNil(AuditedRequest.resource("/nope", config: config, state: .notStarted))
        XCTAssertEqual(AuditedRequest.resource("/vm", config: config, state: .paused)?.serialized(), #"{"state":"Paused"}"#)

        config.kernelPath = "/k"
        config.cmdline = "console=ttyS0"
        config.disks = [DiskConfig(id: "root", path: "/r.img"), DiskConfig(id: "data", path: "/d.img")]
        config.entropy = true
        config.logger = LoggerConfig(logPath: "/log", level: .warning)
        config.metrics = MetricsConfig(path: "/m", properties: ["b": "2", "a": "1"])
        XCTAssertEqual(AuditedRequest.resource("/boot-source", config: config, state: .notStarted)?.serialized(),
                       #"{"kernel_image_path":"/k","boot_args":"console=ttyS0"}"#)
        let drive = try XCTUnwrap(AuditedRequest.resource("/drives/data", config: config, state: .notStarted))
        XCTAssertEqual(drive["path_on_host"], .string("/d.img"), "the drive by its id")
        XCTAssertEqual(drive, (APIRouter.vmConfig(config)["drives"].flatMap { value -> JSONValue? in
            guard case .array(let items) = value else { return nil }
            return items[1]
        }), "as GET /vm/config shows it")
        XCTAssertEqual(AuditedRequest.resource("/entropy", config: config, state: .notStarted)?.serialized(), #"{"rate_limiter":null}"#)
        XCTAssertEqual(AuditedRequest.resource("/logger", config: config, state: .notStarted)?.serialized(),
                       #"{"log_path":"/log","level":"Warning","show_level":null,"show_log_origin":null,"module":null}"#)
        XCTAssertEqual(AuditedRequest.resource("/metrics", config: config, state: .notStarted)?.serialized(),
                       #"{"metrics_path":"/m","emit_id":false,"properties":{"a":"1","b":"2"}}"#)
    }

    func testLifecycleAndRefusalLines() {
        XCTAssertEqual(AuditEvent.apiRefused(PeerCredentials(pid: 9, uid: 1234, gid: 1234), status: 403, reason: "no").line(time: time),
                       #"{"time":"2026-11-24T09:15:02.123456789Z","event":"api_refused","peer":{"pid":9,"uid":1234,"gid":1234},"status":403,"reason":"no"}"#)
        XCTAssertEqual(AuditEvent.apiRejected(PeerCredentials(pid: 9, uid: 1234, gid: 1234), status: 400, reason: "bad \"x\"").line(time: time),
                       #"{"time":"2026-11-24T09:15:02.123456789Z","event":"api_rejected","peer":{"pid":9,"uid":1234,"gid":1234},"status":400,"reason":"bad \"x\""}"#)
        XCTAssertEqual(AuditEvent.started(reboot: false).line(time: time), #"{"time":"2026-11-24T09:15:02.123456789Z","event":"started","reboot":false}"#)
        XCTAssertEqual(AuditEvent.paused.line(time: time), #"{"time":"2026-11-24T09:15:02.123456789Z","event":"paused"}"#)
        XCTAssertEqual(AuditEvent.resumed.line(time: time), #"{"time":"2026-11-24T09:15:02.123456789Z","event":"resumed"}"#)
        XCTAssertEqual(AuditEvent.stopped(status: 0, reason: "guest reset (i8042 reset line)").line(time: time),
                       #"{"time":"2026-11-24T09:15:02.123456789Z","event":"stopped","status":0,"reason":"guest reset (i8042 reset line)"}"#)
        XCTAssertEqual(AuditEvent.startFailed("a \"quoted\"\nreason").line(time: time),
                       #"{"time":"2026-11-24T09:15:02.123456789Z","event":"start_failed","reason":"a \"quoted\"\nreason"}"#, "one line")
        var config = VMConfig()
        config.kernelPath = "/k"
        XCTAssertEqual(AuditEvent.configured(config).members.first?.1["boot-source"], .object([("kernel_image_path", .string("/k"))]))
    }

    /// The writer: lines in order, stamped, each a JSON object; the file created 0600.
    func testTheLogWritesStampedLinesToAFileCreatedOwnerOnly() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-audit-\(UUID().uuidString)").path
        defer { unlink(path) }
        let saved = umask(0)
        let log = try AuditLog(path: path)
        umask(saved)
        log.record(.paused)
        log.record(.stopped(status: 2, reason: "bad"))
        XCTAssertEqual(log.finish(milliseconds: 2000), 0)
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(String(info.st_mode & 0o777, radix: 8), "600")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        for (line, event) in zip(lines, ["paused", "stopped"]) {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
            XCTAssertEqual(object["event"] as? String, event)
            let time = try XCTUnwrap(object["time"] as? String)
            XCTAssertNotNil(time.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$"#, options: .regularExpression), time)
        }
        XCTAssertTrue(lines[1].hasSuffix(#""event":"stopped","status":2,"reason":"bad"}"#), lines[1])
    }
}
