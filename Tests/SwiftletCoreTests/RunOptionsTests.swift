import XCTest
@testable import SwiftletCore

final class RunOptionsTests: XCTestCase {
    func parse(_ arguments: [String]) throws -> VMConfig {
        guard case .run(let config) = try RunOptions.parse(arguments) else { throw XCTSkip("not a run") }
        return config
    }

    func testAllFlags() throws {
        let config = try parse(["--kernel", "/k", "--initrd=/i", "--cmdline", "console=ttyAMA0 quiet",
                                "--cpus", "4", "--memory", "1G", "--dump-dtb", "/d", "--api-socket", "/s"])
        XCTAssertEqual(config.kernelPath, "/k")
        XCTAssertEqual(config.initrdPath, "/i")
        XCTAssertEqual(config.cmdline, "console=ttyAMA0 quiet")
        XCTAssertEqual(config.cpus, 4)
        XCTAssertEqual(config.memoryMiB, 1024)
        XCTAssertEqual(config.dumpDTBPath, "/d")
        XCTAssertEqual(config.apiSocketPath, "/s")
    }

    func testDefaults() throws {
        let config = try parse(["--kernel", "/k"])
        XCTAssertEqual(config.cpus, 1)
        XCTAssertEqual(config.memoryMiB, 256)
        XCTAssertNil(config.initrdPath)
    }

    func testHelp() throws {
        XCTAssertEqual(try RunOptions.parse(["--kernel", "/k", "--help"]), .help)
    }

    func testMemorySizes() throws {
        XCTAssertEqual(try RunOptions.parseMiB("128"), 128)
        XCTAssertEqual(try RunOptions.parseMiB("2g"), 2048)
        XCTAssertEqual(try RunOptions.parseMiB("4096K"), 4)
        for bad in ["", "0", "-5", "12X", "1.5G", "1025K", "99999999999999999999", "G", "2000000G"] {
            XCTAssertThrowsError(try RunOptions.parseMiB(bad), bad)
        }
    }

    func testBadInputGetsOneClearError() {
        let cases: [([String], String)] = [
            ([], "--kernel PATH is required"),
            (["--kernel"], "--kernel needs a value"),
            (["--kernel", ""], "needs a non-empty value"),
            (["--kernel", "/k", "--cpus", "0"], "--cpus needs a positive whole number"),
            (["--kernel", "/k", "--cpus", "two"], "--cpus needs a positive whole number"),
            (["--kernel", "/k", "--cpus", "100000"], "--cpus must be between 1 and"),
            (["--kernel", "/k", "--memory", "1"], "--memory must be between"),
            (["--kernel", "/k", "--frobnicate"], "unknown option --frobnicate"),
            (["--kernel", "/k", "stray"], "unexpected argument stray"),
        ]
        for (arguments, expected) in cases {
            XCTAssertThrowsError(try RunOptions.parse(arguments), "\(arguments)") { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(expected), "\(arguments): '\(message)' lacks '\(expected)'")
                XCTAssertFalse(message.contains("\n"), "one line")
            }
        }
    }
}

final class ImageFormatTests: XCTestCase {
    func testRecognisesWhatIsNotAKernel() {
        XCTAssertEqual(ImageFormat.sniff([0x7F, 0x45, 0x4C, 0x46, 2, 1]), .elf)
        XCTAssertEqual(ImageFormat.sniff([0x1F, 0x8B, 8, 0]), .gzip)
        XCTAssertEqual(ImageFormat.sniff(Array("070701000000".utf8)), .cpio)
        XCTAssertEqual(ImageFormat.sniff([0x28, 0xB5, 0x2F, 0xFD, 0]), .zstd)
        XCTAssertEqual(ImageFormat.sniff([0x90, 0x90, 0xF4]), .unknown)
        var image = [UInt8](repeating: 0, count: 64)
        image[0] = 0x4D; image[1] = 0x5A
        image[56...59] = [0x41, 0x52, 0x4D, 0x64]
        XCTAssertEqual(ImageFormat.sniff(image), .arm64Image, "an EFI-stub Image is an Image, not a PE file")
    }

    func testRequireBootable() {
        XCTAssertNoThrow(try ImageFormat.requireBootable([0x90, 0xF4], path: "raw", expected: .bzImage, name: "a bzImage"))
        XCTAssertThrowsError(try ImageFormat.requireBootable([0x1F, 0x8B, 8], path: "initrd.gz", expected: .bzImage, name: "a bzImage")) {
            XCTAssertEqual("\($0)", "kernel initrd.gz is not a bzImage: it is gzip-compressed data")
        }
    }
}
