import XCTest
@testable import SwiftletCore

/// Whether a logger writes to stderr: the VMM's own stderr lines (the boot timer's) are not
/// logged a second time on the same stream.
final class LoggerDestinationTests: XCTestCase {
    func testStandardErrorUntilAPathIsConfigured() throws {
        XCTAssertTrue(Logger().writesToStandardError)
        let pipe = Pipe()
        XCTAssertFalse(Logger(fd: pipe.fileHandleForWriting.fileDescriptor).writesToStandardError)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-log-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let logger = Logger(level: .info)
        try logger.configure(level: .warning)
        XCTAssertTrue(logger.writesToStandardError, "no path given")
        XCTAssertThrowsError(try logger.configure(path: "/nonexistent/dir/log"))
        XCTAssertTrue(logger.writesToStandardError, "a path that cannot be opened changes nothing")
        try logger.configure(path: path)
        XCTAssertFalse(logger.writesToStandardError)
        logger.finish()
    }
}
