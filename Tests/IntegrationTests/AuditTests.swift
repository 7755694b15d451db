import CLinux
import Foundation
import XCTest

/// API access control and the audit trail of a real VMM on this host's KVM: clients running
/// as other users (the tests run as root; audit_client.py drops to the uid and gid given),
/// the audit log of a whole VM life read line by line, and a seccomp violation's line.
final class AuditTests: XCTestCase {
    var directory: URL!
    var auditPath: String { directory.appendingPathComponent("audit.jsonl").path }

    override func setUpWithError() throws {
        try TestSupport.requireKVM()
        guard geteuid() == 0 else { throw TestSupport.Failure("these tests run clients as other users: run them as root") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-audit-\(UUID().uuidString.prefix(8))")
        // Other users must reach the socket inside it.
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    }

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    struct Answer {
        let status: Int
        let body: String
    }

    struct ClientRun {
        let pid: Int
        let uid: Int
        let gid: Int
        let answers: [Answer]
    }

    /// Runs audit_client.py as `uid`/`gid` (nil: stay root) with these requests.
    func client(_ socket: String, uid: Int? = nil, gid: Int? = nil, _ requests: [(String, String, String?)]) throws -> ClientRun {
        let script = TestSupport.repositoryRoot.appendingPathComponent("Tests/IntegrationTests/audit_client.py").path
        let list = requests.map { [$0.0, $0.1, $0.2 as Any] }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: list.map { $0.map { $0 is String ? $0 : NSNull() } }), as: UTF8.self)
        let result = try TestSupport.run("/usr/bin/env", ["python3", script, socket, uid.map(String.init) ?? "-", gid.map(String.init) ?? "-", json], timeout: 60)
        guard result.status == 0, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
              let pid = object["pid"] as? Int, let results = object["results"] as? [[String: Any]] else {
            throw TestSupport.Failure("audit_client.py failed (\(result.status)): \(result.stdout) \(result.stderr)")
        }
        return ClientRun(pid: pid, uid: object["uid"] as? Int ?? -1, gid: object["gid"] as? Int ?? -1,
                         answers: results.map { Answer(status: $0["status"] as? Int ?? -1, body: $0["body"] as? String ?? "") })
    }

    /// The audit log's lines, each parsed (a line that is not a JSON object fails the test).
    func auditLines(file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: auditPath, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"), "whole lines", file: file, line: line)
        return try text.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestSupport.Failure("not a JSON object: \(line)")
            }
            let time = object["time"] as? String ?? ""
            guard time.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$"#, options: .regularExpression) != nil else {
                throw TestSupport.Failure("not an RFC 3339 UTC time with nanoseconds: \(line)")
            }
            return object
        }
    }

    func peer(_ line: [String: Any]) -> [Int] {
        let peer = line["peer"] as? [String: Any] ?? [:]
        return ["pid", "uid", "gid"].map { peer[$0] as? Int ?? -1 }
    }

    func json(_ value: Any?) -> String {
        guard let value, let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else { return "nil" }
        return String(decoding: data, as: UTF8.self)
    }

    func fileMode(_ path: String) -> String {
        var info = stat()
        guard lstat(path, &info) == 0 else { return "missing" }
        return String(info.st_mode & 0o777, radix: 8)
    }

    /// (a) uid 1000 and group 2000 are admitted, uid 1234 is answered 403 and closed; each
    /// is in the audit log with its uid and pid.
    func testListedPeersAreServedOthersRefusedAndAllAudited() throws {
        let vmm = try ControlAPITests.RunningVMM(directory: directory, extraArguments: [
            "--api-allow", "uid=1000", "--api-allow", "gid=2000", "--audit-log", auditPath])
        XCTAssertEqual(fileMode(vmm.socket), "666", "others can connect; the VMM checks them")
        XCTAssertEqual(fileMode(auditPath), "600")
        let byUser = try client(vmm.socket, uid: 1000, gid: 1000, [("GET", "/", nil)])
        XCTAssertEqual(byUser.uid, 1000)
        XCTAssertEqual(byUser.answers.first?.status, 200, byUser.answers.first?.body ?? "")
        XCTAssertTrue(byUser.answers.first?.body.contains(#""state":"Not started""#) == true)
        let byGroup = try client(vmm.socket, uid: 1500, gid: 2000, [("GET", "/machine-config", nil)])
        XCTAssertEqual(byGroup.answers.first?.status, 200, byGroup.answers.first?.body ?? "")
        let stranger = try client(vmm.socket, uid: 1234, gid: 1234, [("PUT", "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 64}"#)])
        XCTAssertEqual(stranger.answers.first?.status, 403)
        XCTAssertEqual(stranger.answers.first?.body,
                       #"{"fault_message":"access denied: uid 1234 (gid 1234) may not use this API (the VMM's own user and --api-allow's may)"}"#)
        let owner = try client(vmm.socket, [("GET", "/machine-config", nil)])
        XCTAssertTrue(owner.answers.first?.body.contains(#""mem_size_mib":256"#) == true, "the refused PUT changed nothing: \(owner.answers)")

        kill(vmm.process.processIdentifier, SIGINT)
        XCTAssertEqual(try vmm.waitForExit(seconds: 10), 128 + SIGINT, vmm.errorText)
        let lines = try auditLines()
        XCTAssertEqual(lines.map { $0["event"] as? String ?? "?" }, ["api_request", "api_request", "api_refused", "api_request", "stopped"], "\(lines)")
        guard lines.count == 5 else { return }
        XCTAssertEqual(peer(lines[0]), [byUser.pid, 1000, 1000])
        XCTAssertEqual(lines[0]["method"] as? String, "GET")
        XCTAssertEqual(lines[0]["path"] as? String, "/")
        XCTAssertEqual(lines[0]["status"] as? Int, 200)
        XCTAssertEqual(peer(lines[1]), [byGroup.pid, 1500, 2000])
        XCTAssertEqual(lines[1]["path"] as? String, "/machine-config")
        XCTAssertEqual(peer(lines[2]), [stranger.pid, 1234, 1234])
        XCTAssertEqual(lines[2]["status"] as? Int, 403)
        XCTAssertNil(lines[2]["method"], "refused before its request was read")
        XCTAssertEqual(peer(lines[3]), [owner.pid, 0, 0])
        XCTAssertEqual(lines[4]["status"] as? Int, Int(128 + SIGINT))
        XCTAssertEqual(lines[4]["reason"] as? String, "stopped by signal \(SIGINT)")
    }

    /// Without --api-allow the socket stays owner-only: another user cannot even connect.
    func testWithoutAllowTheSocketIsOwnerOnly() throws {
        let vmm = try ControlAPITests.RunningVMM(directory: directory, extraArguments: ["--audit-log", auditPath])
        XCTAssertEqual(fileMode(vmm.socket), "600")
        let other = try client(vmm.socket, uid: 1000, gid: 1000, [("GET", "/", nil)])
        XCTAssertEqual(other.answers.first?.status, 0, "refused by the file's mode: \(other.answers)")
        XCTAssertTrue(other.answers.first?.body.contains("Permission denied") == true, other.answers.first?.body ?? "")
        XCTAssertEqual(try client(vmm.socket, [("GET", "/", nil)]).answers.first?.status, 200)
        kill(vmm.process.processIdentifier, SIGINT)
        XCTAssertEqual(try vmm.waitForExit(seconds: 10), 128 + SIGINT, vmm.errorText)
        XCTAssertEqual(try auditLines().map { $0["event"] as? String ?? "?" }, ["api_request", "stopped"])
    }

    /// (b) A whole life, line by line: configure (one refused change among them), start,
    /// pause, resume, Ctrl-Alt-Del and the guest's reset.
    func testTheAuditLogOfAWholeVMLife() throws {
        let kernel = try TestSupport.guestImage("ticker-x86_64")
        let vmm = try ControlAPITests.RunningVMM(directory: directory, extraArguments: ["--audit-log", auditPath])
        var pids: [Int] = []
        func call(_ method: String, _ path: String, _ body: String?, expect: Int) throws {
            let run = try client(vmm.socket, [(method, path, body)])
            XCTAssertEqual(run.answers.first?.status, expect, "\(method) \(path): \(run.answers)")
            pids.append(run.pid)
        }
        try call("PUT", "/boot-source", #"{"kernel_image_path": "\#(kernel)"}"#, expect: 204)
        try call("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 32}"#, expect: 204)
        try call("PUT", "/machine-config", #"{"vcpu_count": "two", "mem_size_mib": 32}"#, expect: 400)
        try call("PUT", "/actions", #"{"action_type": "InstanceStart"}"#, expect: 204)
        let deadline = Date().addingTimeInterval(10)
        while !vmm.outputText.contains("tick") && Date() < deadline { usleep(20_000) }
        try call("PATCH", "/vm", #"{"state": "Paused"}"#, expect: 204)
        try call("PATCH", "/vm", #"{"state": "Resumed"}"#, expect: 204)
        try call("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#, expect: 204)
        XCTAssertEqual(try vmm.waitForExit(seconds: 20), 0, vmm.errorText)
        XCTAssertEqual(fileMode(auditPath), "600")

        let lines = try auditLines()
        let events = lines.map { line -> String in
            let event = line["event"] as? String ?? "?"
            guard event == "api_request" else { return event }
            return "\(line["method"] as? String ?? "?") \(line["path"] as? String ?? "?") \(line["status"] as? Int ?? -1)"
        }
        XCTAssertEqual(events, ["PUT /boot-source 204", "PUT /machine-config 204", "PUT /machine-config 400",
                                "configured", "started", "PUT /actions 204",
                                "paused", "PATCH /vm 204", "resumed", "PATCH /vm 204", "PUT /actions 204", "stopped"])
        guard events.count == 12, pids.count == 7 else { return }
        // Who: every request's client, as root.
        let requests = lines.filter { $0["event"] as? String == "api_request" }
        XCTAssertEqual(requests.map(peer), pids.map { [$0, 0, 0] })
        // What changed.
        let change = { (line: [String: Any]) in (self.json((line["change"] as? [String: Any])?["old"]), self.json((line["change"] as? [String: Any])?["new"])) }
        XCTAssertEqual(change(lines[0]).0, "{}")
        XCTAssertEqual(change(lines[0]).1, json(["kernel_image_path": kernel]))
        XCTAssertEqual(change(lines[1]).0, #"{"huge_pages":"None","mem_size_mib":256,"smt":false,"track_dirty_pages":false,"vcpu_count":1}"#)
        XCTAssertEqual(change(lines[1]).1, #"{"huge_pages":"None","mem_size_mib":32,"smt":false,"track_dirty_pages":false,"vcpu_count":1}"#)
        XCTAssertNil(lines[2]["change"], "a refused change records none")
        let configured = lines[3]["config"] as? [String: Any]
        XCTAssertEqual(json((configured?["boot-source"] as? [String: Any])?["kernel_image_path"]), json(kernel))
        XCTAssertEqual((configured?["machine-config"] as? [String: Any])?["mem_size_mib"] as? Int, 32)
        XCTAssertEqual(lines[4]["reboot"] as? Bool, false)
        XCTAssertEqual(lines[5]["action_type"] as? String, "InstanceStart")
        XCTAssertNil(lines[5]["change"])
        XCTAssertEqual(change(lines[7]).0, #"{"state":"Running"}"#)
        XCTAssertEqual(change(lines[7]).1, #"{"state":"Paused"}"#)
        XCTAssertEqual(change(lines[9]).0, #"{"state":"Paused"}"#)
        XCTAssertEqual(change(lines[9]).1, #"{"state":"Running"}"#)
        XCTAssertEqual(lines[10]["action_type"] as? String, "SendCtrlAltDel")
        XCTAssertEqual(lines[11]["status"] as? Int, 0)
        XCTAssertEqual(lines[11]["reason"] as? String, "guest reset (i8042 reset line)")
    }

    /// (c) A vCPU's KVM_RUN taken off its list: the SIGSYS handler's own line is in the log.
    func testASeccompViolationIsAudited() throws {
        let kernel = try TestSupport.guestImage("hello-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", kernel, "--memory", "16",
                                                                      "--seccomp-deny", "vcpu:ioctl", "--audit-log", auditPath], timeout: 20)
        XCTAssertEqual(result.status, SIGSYS, result.stderr)
        let lines = try auditLines()
        let violations = lines.filter { $0["event"] as? String == "seccomp_violation" }
        XCTAssertEqual(violations.count, 1, "\(lines)")
        let number = "ioctl".withCString { sl_seccomp_syscall_number($0) }
        XCTAssertEqual(violations.first?["thread"] as? String, "vcpu")
        XCTAssertEqual(violations.first?["syscall"] as? Int, Int(number))
        XCTAssertEqual(violations.first?["arch"] as? String, "x86_64")
        XCTAssertGreaterThan(violations.first?["pid"] as? Int ?? 0, 1)
        // Lines still queued when the kernel kills the process are lost (the handler writes
        // its own straight to the file): which others made it is not checked.
    }
}
