import XCTest
import KVM
import SwiftletCore
import VMM
@testable import X86_64

final class CollectingConsole: ConsoleSink {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    func write(_ byte: UInt8) { lock.lock(); bytes.append(byte); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: bytes, as: UTF8.self) }
}

/// Tiny x86_64 guests on this host's /dev/kvm: real KVM_RUN, real I/O exits.
final class HostKVMBootTests: XCTestCase {
    override func setUpWithError() throws { try TestSupport.requireKVM() }

    func testTinyGuestOutputReachesTheVMMThroughIOExits() throws {
        var config = VMConfig()
        config.kernelPath = try TestSupport.guestImage("hello-x86_64")
        config.memoryMiB = 16
        let console = CollectingConsole()
        let loop = try MainLoop(readsStdin: false)
        let vm = try X86Machine.build(config, system: try KVMSystem(), console: console)
        try loop.start(vm)
        let exit = loop.run()
        XCTAssertEqual(console.text, "Hello from a Swiftlet x86_64 guest\n")
        XCTAssertEqual(exit, .reset(how: "i8042 reset line"), "the guest's i8042 reset ends the run")
        XCTAssertEqual(exit.status, 0)
    }

    func testSwiftletBinaryBootsTinyGuestAndExitsZero() throws {
        let image = try TestSupport.guestImage("hello-x86_64")
        for cpus in ["1", "2"] {
            let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", image, "--memory", "32", "--cpus", cpus])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(result.stdout, "Hello from a Swiftlet x86_64 guest\n")
            XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd)
        }
    }

    /// `--stats`: every byte the guest printed is one write to the 16550 (one port-out exit
    /// each), the reset one write to the i8042, and the end line stays last.
    func testStatsCountExitsAndDeviceAccesses() throws {
        let image = try TestSupport.guestImage("hello-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--stats", "--kernel", image, "--memory", "32"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let bytes = result.stdout.utf8.count
        // The VMM's own stopping time varies; its line is checked apart.
        var lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let stopping = lines.firstIndex { $0.hasPrefix("swiftlet: stats: stopping took ") }
        XCTAssertNotNil(stopping, result.stderr)
        if let stopping {
            let words = lines[stopping].split(separator: " ")
            XCTAssertEqual(words.count, 13, lines[stopping])
            let milliseconds = words.count > 4 ? Double(words[4]) : nil
            XCTAssertNotNil(milliseconds, lines[stopping])
            XCTAssertLessThan(milliseconds ?? .infinity, 1000, "a tiny guest's VMM stops within a second")
            XCTAssertEqual(words.suffix(8).joined(separator: " "), "ms from the stop request to this line")
            lines.remove(at: stopping)
        }
        XCTAssertEqual(lines.joined(separator: "\n"), """
            swiftlet: stats: \(bytes + 1) exits: mmio-read 0, mmio-write 0, pio-in 0, pio-out \(bytes + 1), interrupted 0, halt 0, shutdown 0, system-event 0, failure 0
            swiftlet: stats: unclaimed mmio 0, unclaimed pio 0, malformed exits 0
            swiftlet: stats: pio 0x60 i8042 keyboard controller: 0 reads, 1 writes
            swiftlet: stats: pio 0x3f8 16550 UART: 0 reads, \(bytes) writes
            \(TestSupport.i8042ResetEnd)
            """)
    }

    /// ACPI soft-off through the FADT's sleep control register ends the run as a power-off,
    /// which swiftlet names apart from a reset.
    func testACPISoftOffEndsTheRunAsAPowerOff() throws {
        let image = try TestSupport.guestImage("acpi-off-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", image, "--memory", "32"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "ACPI soft-off from a Swiftlet x86_64 guest\n")
        XCTAssertEqual(result.stderr, "swiftlet: guest powered off (ACPI S5)\n")
    }

    func testWildGuestDoesNotCrashOrHangTheVMM() throws {
        // Garbage written to every I/O port and MMIO outside RAM, then a clean reset.
        let image = try TestSupport.guestImage("wild-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", image, "--memory", "32"], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasSuffix("\nwild guest survived\n"), String(result.stdout.suffix(80)))
        XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd)
    }

    func testWhatTheWildGuestSendsNowhereIsCounted() throws {
        var config = VMConfig()
        config.kernelPath = try TestSupport.guestImage("wild-x86_64")
        config.memoryMiB = 32
        let loop = try MainLoop(readsStdin: false)
        let vm = try X86Machine.build(config, system: try KVMSystem(), console: CollectingConsole())
        try loop.start(vm)
        XCTAssertEqual(loop.run(), .reset(how: "i8042 reset line"))
        // Every port but the devices' (and 0x64) got a byte and was read back; the MMIO
        // addresses outside RAM each took six accesses.
        XCTAssertGreaterThan(vm.exitCounters.unclaimedPIO, 60_000)
        XCTAssertEqual(vm.exitCounters.unclaimedMMIO, 5 * 6)
        XCTAssertEqual(vm.exitCounters.malformedExits, 0)
    }

    func testMemoryAboveTheMMIOHoleIsSplit() throws {
        var config = VMConfig()
        config.memoryMiB = 256
        XCTAssertEqual(X86Machine.ramRegions(config), [.init(guestBase: 0, size: 256 << 20)])
        config.memoryMiB = 4096
        XCTAssertEqual(X86Machine.ramRegions(config), [.init(guestBase: 0, size: 0xC000_0000),
                                                        .init(guestBase: 0x1_0000_0000, size: 0x4000_0000)])
    }

    func testKernelLargerThanMemoryIsRefused() throws {
        let path = NSTemporaryDirectory() + "swiftlet-big-\(getpid()).bin"
        _ = FileManager.default.createFile(atPath: path, contents: Data(count: 3 << 20))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", path, "--memory", "2"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("does not fit in guest memory"), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "one line: \(result.stderr)")
    }
}

/// What a user sees when KVM is unusable.
final class KVMAvailabilityTests: XCTestCase {
    func testMissingDeviceGivesOneClearLine() {
        XCTAssertThrowsError(try KVMSystem(path: "/nonexistent/kvm")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("cannot open /nonexistent/kvm: No such file or directory"), message)
        }
    }

    func testNonKVMDeviceIsRecognised() {
        XCTAssertThrowsError(try KVMSystem(path: "/dev/null")) { error in
            XCTAssertTrue("\(error)".contains("/dev/null is not a KVM device"), "\(error)")
        }
    }

    func testAPIVersionOtherThan12IsRefused() {
        XCTAssertNoThrow(try KVMSystem.checkAPIVersion(12, errno: 0, path: "/dev/kvm"))
        for version: Int32 in [0, 11, 13, 2] {
            XCTAssertThrowsError(try KVMSystem.checkAPIVersion(version, errno: 0, path: "/dev/kvm")) { error in
                XCTAssertEqual("\(error)", "/dev/kvm reports KVM API version \(version); Swiftlet needs version 12")
            }
        }
    }

    func testBinaryReportsInaccessibleKVM() throws {
        // /dev/kvm is root-only (crw-------) here: as `nobody` it cannot be opened.
        guard getuid() == 0 else { throw TestSupport.Failure("this test drops privileges with runuser and needs root") }
        let image = try TestSupport.guestImage("hello-x86_64")
        let copy = NSTemporaryDirectory() + "swiftlet-nobody-\(getpid())"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: TestSupport.swiftletBinary, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let result = try TestSupport.run("/usr/sbin/runuser", ["-u", "nobody", "--", copy, "run", "--no-reboot", "--kernel", image])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.hasPrefix("swiftlet: cannot open /dev/kvm: Permission denied"), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
    }
}
