import XCTest
@testable import SwiftletCore

/// The configuration `swiftlet run` arguments parse to. Any other result (such as `.help`)
/// is a wrong parse and fails the calling test at the call site; a skip would count as a pass.
func parseRun(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> VMConfig {
    let parsed = try RunOptions.parse(arguments)
    var config: VMConfig?
    if case .run(let parsedConfig) = parsed { config = parsedConfig }
    return try XCTUnwrap(config, "\(arguments) parsed as \(parsed), not as a run", file: file, line: line)
}

final class RunOptionsTests: XCTestCase {
    func testAllFlags() throws {
        let config = try parseRun(["--kernel", "/k", "--initrd=/i", "--cmdline", "console=ttyAMA0 quiet",
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
        let config = try parseRun(["--kernel", "/k"])
        XCTAssertTrue(config.rebootOnReset, "a guest reboot boots again by default")
        XCTAssertFalse(try parseRun(["--kernel", "/k", "--no-reboot"]).rebootOnReset)
        XCTAssertFalse(config.printStats)
        XCTAssertTrue(try parseRun(["--kernel", "/k", "--stats"]).printStats)
        XCTAssertEqual(config.hugePages, .none)
        XCTAssertEqual(try parseRun(["--kernel", "/k", "--hugepages", "2M"]).hugePages, .twoMiB)
        XCTAssertEqual(try parseRun(["--kernel", "/k", "--hugepages=none"]).hugePages, .none)
        XCTAssertThrowsError(try parseRun(["--kernel", "/k", "--hugepages", "1G"]))
        XCTAssertThrowsError(try parseRun(["--kernel", "/k", "--hugepages", "2M", "--memory", "255"]), "odd MiB in 2 MiB pages")
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

final class DiskOptionsTests: XCTestCase {
    func testDisksInOrderWithDefaultIDs() throws {
        let config = try parseRun(["--kernel", "/k", "--disk", "path=/root.img", "--disk=path=/data.img,readonly=on,id=data", "--rng"])
        XCTAssertEqual(config.disks, [DiskConfig(id: "disk0", path: "/root.img"), DiskConfig(id: "data", path: "/data.img", readOnly: true)])
        XCTAssertTrue(config.entropy)
        XCTAssertFalse(try parseRun(["--kernel", "/k"]).entropy)
    }

    func testBadDiskOptionsAreOneClearError() {
        let cases: [(String, String)] = [
            ("readonly=on", "needs path=FILE"),
            ("path=", "non-empty"),
            ("path=/a,readonly=maybe", "readonly= takes on or off"),
            ("path=/a,cache=none", "unknown key 'cache'"),
            ("/a", "expected key=value"),
            ("path=/a,id=", "non-empty"),
        ]
        for (value, message) in cases {
            XCTAssertThrowsError(try RunOptions.parse(["--kernel", "/k", "--disk", value]), value) { error in
                let error = error as! SwiftletError
                XCTAssertTrue(error.isBadInput)
                XCTAssertTrue(error.description.contains(message), "\(value): \(error)")
            }
        }
        XCTAssertThrowsError(try RunOptions.parse(["--kernel", "/k", "--disk", "path=/a,id=x", "--disk", "path=/b,id=x"])) { error in
            XCTAssertTrue("\(error)".contains("used twice"), "\(error)")
        }
        XCTAssertThrowsError(try RunOptions.parse(["--kernel", "/k", "--disk"]))
    }

    func testRootDeviceGoesFirstAndNamesItselfOnTheCommandLine() {
        var config = VMConfig()
        config.cmdline = "console=ttyS0"
        config.setDisk(DiskConfig(id: "data", path: "/d"))
        var root = DiskConfig(id: "rootfs", path: "/r", readOnly: true)
        root.isRootDevice = true
        config.setDisk(root)
        XCTAssertEqual(config.disks.map { $0.id }, ["rootfs", "data"])
        XCTAssertEqual(config.bootArguments(default: "x"), "console=ttyS0 root=/dev/vda ro")
        config.disks[0].partUUID = "1234-01"
        config.disks[0].readOnly = false
        XCTAssertEqual(config.bootArguments(default: "x"), "console=ttyS0 root=PARTUUID=1234-01 rw")
        config.cmdline = "console=ttyS0 root=/dev/vdb"
        XCTAssertEqual(config.bootArguments(default: "x"), "console=ttyS0 root=/dev/vdb", "the user's root= wins")
        // A second PUT of the same id replaces the first.
        config.setDisk(DiskConfig(id: "data", path: "/d2"))
        XCTAssertEqual(config.disks.map { $0.path }, ["/r", "/d2"])
        var second = DiskConfig(id: "other", path: "/o")
        second.isRootDevice = true
        config.setDisk(second)
        XCTAssertThrowsError(try config.validate(), "two root devices")
    }
}

final class NetOptionsTests: XCTestCase {
    func testNetInterfacesInOrderWithDefaultIDs() throws {
        guard case .run(let config) = try RunOptions.parse(["--kernel", "/k", "--net", "tap=tap0", "--net=tap=tap1,mac=06:00:0A:00:02:02,id=uplink"]) else {
            return XCTFail("not a run")
        }
        XCTAssertEqual(config.networkInterfaces, [NetworkInterfaceConfig(id: "net0", tapName: "tap0"),
                                                  NetworkInterfaceConfig(id: "uplink", tapName: "tap1", mac: MACAddress("06:00:0a:00:02:02"))])
        XCTAssertEqual(config.networkInterfaces[1].mac?.description, "06:00:0a:00:02:02")
    }

    func testBadNetOptionsAreOneClearError() {
        let cases: [([String], String)] = [
            (["--net", "mac=06:00:00:00:00:01"], "needs tap=NAME"),
            (["--net", "tap="], "interface name of 1 to 15"),
            (["--net", "tap=a-very-long-tap-name"], "interface name of 1 to 15"),
            (["--net", "tap=tap 0"], "without '/', ':' or spaces"),
            (["--net", "tap=.."], "interface name of 1 to 15"),
            (["--net", "tap=t,mac=01:00:5e:00:00:01"], "unicast"),
            (["--net", "tap=t,mac=00:00:00:00:00:00"], "unicast"),
            (["--net", "tap=t,mac=06:00:00:00:00"], "unicast"),
            (["--net", "tap=t,mac=+6:00:00:00:00:01"], "unicast"),
            (["--net", "tap=t,queues=2"], "unknown key 'queues'"),
            (["--net", "tap0"], "expected key=value"),
            (["--net", "tap=t", "--net", "tap=t"], "given to two network interfaces"),
            (["--net", "tap=a,id=x", "--net", "tap=b,id=x"], "used twice"),
            (["--net", "tap=a,mac=06:00:00:00:00:01", "--net", "tap=b,mac=06:00:00:00:00:01"], "given to two"),
        ]
        for (arguments, message) in cases {
            XCTAssertThrowsError(try RunOptions.parse(["--kernel", "/k"] + arguments), "\(arguments)") { error in
                let error = error as! SwiftletError
                XCTAssertTrue(error.isBadInput)
                XCTAssertTrue(error.description.contains(message), "\(arguments): \(error)")
            }
        }
    }

    func testRandomMACsAreLocalUnicastAndDiffer() {
        let a = MACAddress.random(), b = MACAddress.random()
        XCTAssertTrue(a.isValidUnicast)
        XCTAssertEqual(a.bytes[0] & 3, 2, "locally administered, unicast")
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(MACAddress(a.description), a)
    }
}

final class VsockOptionsTests: XCTestCase {
    func testVsock() throws {
        guard case .run(let config) = try RunOptions.parse(["--kernel", "/k", "--vsock", "cid=3,socket=/tmp/v.sock"]) else { return XCTFail("not a run") }
        XCTAssertEqual(config.vsock, VsockConfig(guestCID: 3, udsPath: "/tmp/v.sock"))
    }

    func testBadVsockIsOneClearError() {
        let cases: [(String, String)] = [
            ("cid=2,socket=/v", "between 3 and 4294967294"),
            ("cid=4294967295,socket=/v", "between 3 and 4294967294"),
            ("cid=-3,socket=/v", "whole number"),
            ("socket=/v", "needs cid=N"),
            ("cid=3", "needs socket=PATH"),
            ("cid=3,socket=", "non-empty"),
            ("cid=3,socket=/\(String(repeating: "x", count: 120))", "1 to 96 bytes"),
            ("cid=3,port=5", "unknown key 'port'"),
        ]
        for (value, message) in cases {
            XCTAssertThrowsError(try RunOptions.parse(["--kernel", "/k", "--vsock", value]), value) { error in
                let error = error as! SwiftletError
                XCTAssertTrue(error.isBadInput)
                XCTAssertTrue(error.description.contains(message), "\(value): \(error)")
            }
        }
    }
}
