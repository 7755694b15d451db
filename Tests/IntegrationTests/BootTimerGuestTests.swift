import Foundation
import XCTest
import KVM
import SwiftletCore
import VMM
@testable import X86_64

/// `--boot-timer` on this host's KVM with Tests/Guests/boot-timer-x86_64.S, which writes 123
/// to 0xD000_0000 (then reads, writes 123 again and writes a 16-bit 123) and resets.
final class BootTimerGuestTests: XCTestCase {
    override func setUpWithError() throws { try TestSupport.requireKVM() }

    static let guestOutput = "boot timer signalled, read 0\n"

    /// The numbers of `swiftlet: Guest-boot-time = N us N ms, N CPU us N CPU ms`, or nil.
    static func parse(_ line: Substring) -> (us: UInt64, ms: UInt64, cpuUs: UInt64, cpuMs: UInt64)? {
        let words = line.split(separator: " ")
        guard words.count == 13, words[0] == "swiftlet:", words[1] == "Guest-boot-time", words[2] == "=",
              words[4] == "us", words[6] == "ms,", words[8] == "CPU", words[9] == "us", words[11] == "CPU", words[12] == "ms",
              let us = UInt64(words[3]), let ms = UInt64(words[5]), let cpuUs = UInt64(words[7]), let cpuMs = UInt64(words[10])
        else { return nil }
        return (us, ms, cpuUs, cpuMs)
    }

    static func bootTimeLines(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { $0.contains("Guest-boot-time") }
    }

    func testTheGuestsSignalIsReportedOnceWithPlausibleTimes() throws {
        let image = try TestSupport.guestImage("boot-timer-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--boot-timer", "--kernel", image, "--memory", "32"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, Self.guestOutput, "the boot timer reads 0")
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, result.stderr)
        XCTAssertEqual(Self.bootTimeLines(result.stderr).count, 1, "the second 123 is not reported: \(result.stderr)")
        XCTAssertEqual(lines.last.map(String.init), "swiftlet: guest reset (i8042 reset line)", "the end line stays last")
        let time = try XCTUnwrap(lines.first.flatMap { Self.parse($0) }, result.stderr)
        XCTAssertGreaterThan(time.us, 0)
        XCTAssertLessThan(time.us, UInt64(result.seconds * 1_000_000), "measured within the run")
        XCTAssertEqual(time.ms, time.us / 1000)
        XCTAssertGreaterThan(time.cpuUs, 0)
        XCTAssertEqual(time.cpuMs, time.cpuUs / 1000)
        let cores = UInt64(ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertLessThanOrEqual(time.cpuUs, time.us * cores + 1000, "no more CPU time than the cores had")
    }

    /// The jailer's --start-time-us (CLOCK_MONOTONIC) is the origin when given.
    func testTheJailersStartTimeIsTheOrigin() throws {
        let image = try TestSupport.guestImage("boot-timer-x86_64")
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let twoSecondsAgo = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000 - 2_000_000
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--boot-timer", "--kernel", image, "--memory", "32",
                                                                      "--start-time-us", "\(twoSecondsAgo)", "--parent-cpu-time-us", "5000000"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = Self.bootTimeLines(result.stderr)
        XCTAssertEqual(lines.count, 1, result.stderr)
        let time = try XCTUnwrap(lines.first.flatMap { Self.parse($0) }, result.stderr)
        XCTAssertGreaterThanOrEqual(time.us, 2_000_000)
        XCTAssertLessThan(time.us, 2_000_000 + UInt64(result.seconds * 1_000_000))
        XCTAssertGreaterThan(time.cpuUs, 5_000_000, "the jailer's own CPU time is added")
    }

    /// Without --boot-timer there is no device: the guest's accesses are unclaimed MMIO,
    /// counted, and the guest runs to its end.
    func testWithoutTheFlagTheWritesAreUnclaimedAndNothingIsReported() throws {
        let image = try TestSupport.guestImage("boot-timer-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--stats", "--kernel", image, "--memory", "32"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, Self.guestOutput, "unclaimed MMIO reads 0 on x86 too")
        XCTAssertEqual(Self.bootTimeLines(result.stderr), [])
        XCTAssertTrue(result.stderr.contains("swiftlet: stats: unclaimed mmio 4, unclaimed pio 0, malformed exits 0\n"), result.stderr)
        XCTAssertTrue(result.stderr.hasSuffix(TestSupport.i8042ResetEnd), result.stderr)
    }

    /// With --stats the device's accesses show like any other device's.
    func testTheDevicesAccessesAreCounted() throws {
        let image = try TestSupport.guestImage("boot-timer-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--stats", "--boot-timer", "--kernel", image, "--memory", "32"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("swiftlet: stats: unclaimed mmio 0, unclaimed pio 0, malformed exits 0\n"), result.stderr)
        XCTAssertTrue(result.stderr.contains("swiftlet: stats: mmio 0xd0000000 boot timer: 1 reads, 3 writes\n"), result.stderr)
        XCTAssertEqual(Self.bootTimeLines(result.stderr).count, 1, result.stderr)
    }

    /// A guest that reboots signals again on every boot: only the process's first boot is
    /// reported (the times are from the process's start, so a later one would say little).
    func testAfterAGuestRebootNothingMoreIsReported() throws {
        let image = try TestSupport.guestImage("boot-timer-x86_64")
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-boot-timer-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestSupport.swiftletBinary)
        process.arguments = ["run", "--boot-timer", "--kernel", image, "--memory", "32"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try process.run()
        // Wait for a few reboots, then stop it (SIGINT stops at once).
        let deadline = Date().addingTimeInterval(30)
        var stderr = ""
        while Date() < deadline {
            usleep(50_000)
            stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            if stderr.contains("rebooting (boot 4)") { break }
        }
        process.interrupt()
        process.waitUntilExit()
        stderr = try String(contentsOfFile: errPath, encoding: .utf8)
        XCTAssertTrue(stderr.contains("rebooting (boot 4)"), stderr)
        XCTAssertEqual(Self.bootTimeLines(stderr).count, 1, stderr)
        XCTAssertTrue(stderr.hasPrefix("swiftlet: Guest-boot-time = "), "the first boot's, before its reset: \(stderr)")
    }

    /// In process: the device's counters after the guest's four accesses.
    func testTheDeviceCountsWhatTheGuestWrote() throws {
        var config = VMConfig()
        config.kernelPath = try TestSupport.guestImage("boot-timer-x86_64")
        config.memoryMiB = 16
        config.bootTimer = true
        let console = CollectingConsole()
        let loop = try MainLoop(readsStdin: false)
        let vm = try X86Machine.build(config, system: try KVMSystem(), console: console)
        let timer = try XCTUnwrap(vm.devices.bootTimer)
        try loop.start(vm)
        XCTAssertEqual(loop.run(), .reset(how: "i8042 reset line"))
        XCTAssertEqual(console.text, Self.guestOutput)
        XCTAssertEqual(timer.ignoredWrites, 1, "the 16-bit write")
        // The first 123 is timed (and reported on this test process's stderr) unless an
        // earlier VM of this process reported already; every other 123 is a repeat.
        XCTAssertEqual(timer.repeatedSignals + (timer.hasFired ? 1 : 0), 2)
        XCTAssertNil(timer.takeReport(), "reported when the VM stopped")
        XCTAssertEqual(vm.exitCounters.unclaimedMMIO, 0)
    }
}
