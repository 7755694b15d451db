import XCTest
@testable import SwiftletCore

/// `--api-allow` and the decision it feeds: who may use the control API.
final class APIAccessTests: XCTestCase {
    func testRulesParse() throws {
        XCTAssertEqual(try APIPeerRule.parse("uid=0"), .uid(0))
        XCTAssertEqual(try APIPeerRule.parse("uid=1000"), .uid(1000))
        XCTAssertEqual(try APIPeerRule.parse("gid=4294967294"), .gid(4_294_967_294))
        XCTAssertEqual(APIPeerRule.gid(27).description, "gid=27")
    }

    func testBadRulesAreOneClearError() {
        for bad in ["", "uid", "uid=", "=5", "uid=-1", "uid=+5", "uid=abc", "uid= 5", "user=5", "UID=5", "uid=5,gid=6",
                    "uid=4294967295", "uid=4294967296", "uid=99999999999", "gid=0x10", "uid=1=2"] {
            XCTAssertThrowsError(try APIPeerRule.parse(bad), bad) { error in
                XCTAssertEqual(error as? SwiftletError,
                               .invalidArgument("--api-allow takes uid=N or gid=N (N a numeric user or group id), got '\(bad)'"), bad)
            }
        }
    }

    func testTheOwnerIsAlwaysAdmittedAndOthersOnlyWhenListed() {
        let ownerOnly = APIAccessPolicy(ownerUID: 1000)
        XCTAssertFalse(ownerOnly.socketIsWorldConnectable)
        XCTAssertTrue(ownerOnly.admits(PeerCredentials(pid: 1, uid: 1000, gid: 5)))
        XCTAssertFalse(ownerOnly.admits(PeerCredentials(pid: 1, uid: 0, gid: 0)), "not even root, unless it is the owner")
        XCTAssertFalse(ownerOnly.admits(PeerCredentials(pid: 1, uid: 1001, gid: 1000)), "the owner's uid as a gid is not the owner")

        let policy = APIAccessPolicy(ownerUID: 0, rules: [.uid(1000), .gid(2000)])
        XCTAssertTrue(policy.socketIsWorldConnectable)
        XCTAssertTrue(policy.admits(PeerCredentials(pid: 7, uid: 0, gid: 9)), "owner")
        XCTAssertTrue(policy.admits(PeerCredentials(pid: 7, uid: 1000, gid: 1000)), "listed uid")
        XCTAssertTrue(policy.admits(PeerCredentials(pid: 7, uid: 1500, gid: 2000)), "listed gid")
        XCTAssertFalse(policy.admits(PeerCredentials(pid: 7, uid: 2000, gid: 1000)), "a uid rule is not a gid rule and back")
        XCTAssertFalse(policy.admits(PeerCredentials(pid: 7, uid: 1234, gid: 1234)))
    }

    func testRunFlags() throws {
        let config = try parseRun(["--api-socket", "/s", "--api-allow", "uid=1000", "--api-allow=gid=2000", "--api-allow", "uid=1000",
                                   "--audit-log", "/var/log/audit.jsonl"])
        XCTAssertEqual(config.apiAllow, [.uid(1000), .gid(2000)], "in order, a repeated rule once")
        XCTAssertEqual(config.auditLogPath, "/var/log/audit.jsonl")
        let plain = try parseRun(["--kernel", "/k"])
        XCTAssertEqual(plain.apiAllow, [])
        XCTAssertNil(plain.auditLogPath)
        XCTAssertEqual(try parseRun(["--kernel", "/k", "--audit-log", "/a"]).auditLogPath, "/a", "an audit log without an API: lifecycle and seccomp")
        let cases: [([String], String)] = [
            (["--kernel", "/k", "--api-allow", "uid=5"], "--api-allow needs an API socket (--api-socket PATH)"),
            (["--api-socket", "/s", "--api-allow"], "--api-allow needs a value"),
            (["--api-socket", "/s", "--api-allow", "nobody"], "--api-allow takes uid=N or gid=N (N a numeric user or group id), got 'nobody'"),
            (["--api-socket", "/s", "--audit-log", ""], "--audit-log needs a non-empty value"),
            (["--api-socket", "/s", "--audit-log"], "--audit-log needs a value"),
        ]
        for (arguments, message) in cases {
            XCTAssertThrowsError(try RunOptions.parse(arguments), "\(arguments)") { error in
                XCTAssertEqual(error as? SwiftletError, .invalidArgument(message), "\(arguments)")
            }
        }
        XCTAssertThrowsError(try RunOptions.parse(["--api-allow", "uid=1"], dialect: .firecracker), "swiftlet's flag only")
        XCTAssertTrue(RunOptions.usage.contains("--api-allow uid=N|gid=N"))
        XCTAssertTrue(RunOptions.usage.contains("--audit-log PATH"))
    }

    func testRFC3339() {
        XCTAssertEqual(RFC3339.format(seconds: 0, nanoseconds: 0), "1970-01-01T00:00:00.000000000Z")
        XCTAssertEqual(RFC3339.format(seconds: 1_709_210_096, nanoseconds: 7), "2024-02-29T12:34:56.000000007Z")
        XCTAssertEqual(RFC3339.format(seconds: 253_402_300_799, nanoseconds: 999_999_999), "9999-12-31T23:59:59.999999999Z")
        XCTAssertEqual(RFC3339.format(seconds: -1, nanoseconds: 500_000_000), "1969-12-31T23:59:59.500000000Z")
        let now = RFC3339.now()
        XCTAssertNotNil(now.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$"#, options: .regularExpression), now)
    }
}
