import Foundation
import XCTest

/// A guest's reset boots the same configuration afresh in the same process (a server's reset
/// button); `--no-reboot` ends the VMM instead. The tiny x86_64 guest prints a line and resets
/// through the i8042, so by default it boots again and again, which shows what each reboot
/// lets go of: the disk's lock, the vsock socket, the guest RAM and every descriptor.
final class RebootTests: XCTestCase {
    override func setUpWithError() throws { try TestSupport.requireKVM() }

    func testGuestResetBootsAgainInProcessAndLeaksNothing() throws {
        let image = try TestSupport.guestImage("hello-x86_64")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-reboot-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let disk = directory.appendingPathComponent("disk.img").path
        _ = FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20))
        let socket = directory.appendingPathComponent("vsock.sock").path
        let out = directory.appendingPathComponent("out"), err = directory.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestSupport.swiftletBinary)
        // A writable disk (locked), a vsock socket and an entropy device: each reboot must
        // release them, or the next build is refused and swiftlet exits.
        process.arguments = ["run", "--kernel", image, "--memory", "64", "--disk", "path=\(disk)",
                             "--vsock", "cid=3,socket=\(socket)", "--rng"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let pid = process.processIdentifier
        /// How many times the guest has printed its line: once per boot.
        func boots() -> Int {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            return text.components(separatedBy: "Hello from a Swiftlet x86_64 guest\n").count - 1
        }
        func stderrText() -> String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(60)
        while boots() < 5 && process.isRunning && Date() < deadline { usleep(5_000) }
        guard process.isRunning else { return XCTFail("swiftlet ended after \(boots()) boots: \(stderrText())") }
        var fdCounts: [Int] = []
        let early = try Self.virtualMemoryKiB(pid)
        let earlyBoots = boots()
        // 40 more boots, sampling the descriptors in every phase of build, run and teardown.
        while boots() < earlyBoots + 40 && process.isRunning && Date() < deadline {
            guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { break }
            fdCounts.append(fds.count)
            usleep(2_000)
        }
        guard process.isRunning, let late = try? Self.virtualMemoryKiB(pid) else {
            return XCTFail("swiftlet ended during reboots: \(stderrText())")
        }
        XCTAssertGreaterThanOrEqual(boots(), earlyBoots + 40)
        // 64 MiB of guest RAM per boot left mapped would grow the address space by 2.5 GiB.
        XCTAssertLessThan(late - early, 128 * 1024, "address space grew from \(early) to \(late) KiB over 40 reboots")
        XCTAssertLessThan(fdCounts.max() ?? 0, 64, "descriptors seen during 40 reboots: \(Set(fdCounts).sorted())")

        // SIGINT ends it, also when it lands between a guest reset and the next boot.
        kill(pid, SIGINT)
        let stopDeadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < stopDeadline { usleep(10_000) }
        guard !process.isRunning else {
            kill(pid, SIGKILL)
            return XCTFail("swiftlet still running 10 s after SIGINT (it booted \(boots()) times)")
        }
        XCTAssertEqual(process.terminationStatus, 128 + SIGINT)
        let lines = String(decoding: try Data(contentsOf: err), as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.last, "swiftlet: stopped by signal 2")
        // A line for each of the first ten reboots, then for every hundredth; the signal may
        // have come between a reset and the next boot's output.
        let numbers = lines.dropLast().map { line -> Int in
            guard line.hasPrefix("swiftlet: guest reset (i8042 reset line); rebooting (boot "),
                  let number = Int(line.split(separator: "(").last?.dropFirst("boot ".count).prefix(while: \.isNumber) ?? "") else { return -1 }
            return number
        }
        func reported(reboots: Int) -> [Int] { Array(2...min(reboots + 1, 11)) + Array(stride(from: 100, through: reboots + 1, by: 100)) }
        XCTAssertTrue(numbers == reported(reboots: boots() - 1) || numbers == reported(reboots: boots()),
                      "reboot lines \(numbers) for \(boots()) boots")
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the vsock socket is removed on exit")
    }

    func testNoRebootEndsTheVMMAtTheFirstReset() throws {
        let result = try TestSupport.run(TestSupport.swiftletBinary, ["run", "--no-reboot", "--kernel", try TestSupport.guestImage("hello-x86_64"), "--memory", "32"])
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(result.stdout, "Hello from a Swiftlet x86_64 guest\n")
        XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd)
    }

    static func virtualMemoryKiB(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmSize:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else {
            throw TestSupport.Failure("no VmSize in /proc/\(pid)/status")
        }
        return kib
    }
}
