import CLinux
import XCTest
@testable import SwiftletCore

/// The audit line the SIGSYS handler writes (C, integer formatting only): the same time
/// layout as the Swift side's RFC 3339 times, and valid JSON.
final class SeccompAuditLineTests: XCTestCase {
    #if arch(x86_64)
    let arch = "x86_64"
    #else
    let arch = "aarch64"
    #endif

    func line(seconds: Int64, nanoseconds: Int, kind: String, number: UInt32, pid: Int32, capacity: Int = 256) -> String {
        var buffer = [CChar](repeating: 0, count: capacity)
        let length = buffer.withUnsafeMutableBufferPointer { sl_seccomp_audit_line($0.baseAddress, capacity, seconds, nanoseconds, kind, number, pid) }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func testTheLineIsJSONWithTheLoggersTime() throws {
        XCTAssertEqual(line(seconds: 1_709_210_096, nanoseconds: 7, kind: "vcpu", number: 16, pid: 4242),
                       #"{"time":"2024-02-29T12:34:56.000000007Z","event":"seccomp_violation","pid":4242,"thread":"vcpu","syscall":16,"arch":"\#(arch)"}"# + "\n")
        // The C date arithmetic agrees with the Swift one across eras, leap years and day ends.
        for seconds: Int64 in [0, 59, 86_399, 86_400, 951_782_400, 4_107_542_399, 253_402_300_799, 1_700_000_000] {
            let text = line(seconds: seconds, nanoseconds: 123_456_789, kind: "io", number: 232, pid: 1)
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
            XCTAssertEqual(object["time"] as? String, RFC3339.format(seconds: seconds, nanoseconds: 123_456_789))
            XCTAssertEqual(object["thread"] as? String, "io")
            XCTAssertEqual(object["syscall"] as? Int, 232)
        }
    }

    func testATooSmallBufferIsCutNotOverrun() {
        var buffer = [CChar](repeating: 0x55, count: 40)
        let length = buffer.withUnsafeMutableBufferPointer { sl_seccomp_audit_line($0.baseAddress, 32, 0, 0, "main", 1, 1) }
        XCTAssertEqual(length, 32)
        XCTAssertEqual(buffer[31], 0x0A, "still one line")
        XCTAssertEqual(buffer[32], 0x55, "nothing written past the capacity")
    }
}
