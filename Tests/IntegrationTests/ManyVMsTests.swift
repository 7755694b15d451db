import Foundation
import XCTest

/// Many VMMs on one host at once: each its own process, VM and vCPU thread on this host's
/// KVM. None may fail, hang or disturb another.
final class ManyVMsTests: XCTestCase {
    override func setUpWithError() throws { try TestSupport.requireKVM() }

    func testFiftySwiftletsEachRunATinyGuestAtOnce() throws {
        let image = try TestSupport.guestImage("hello-x86_64")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-many-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // All started before any is waited for, so all 50 run at the same time.
        var running: [(process: Process, out: URL, err: URL)] = []
        for index in 0..<50 {
            let out = directory.appendingPathComponent("\(index).out"), err = directory.appendingPathComponent("\(index).err")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestSupport.swiftletBinary)
            process.arguments = ["run", "--no-reboot", "--kernel", image, "--memory", "16"]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            try process.run()
            running.append((process, out, err))
        }
        let deadline = Date().addingTimeInterval(120)
        var good = 0
        for (index, vmm) in running.enumerated() {
            while vmm.process.isRunning && Date() < deadline { usleep(10_000) }
            if vmm.process.isRunning {
                vmm.process.terminate()
                XCTFail("swiftlet \(index) still running after 120 s")
                continue
            }
            let stdout = String(decoding: try Data(contentsOf: vmm.out), as: UTF8.self)
            let stderr = String(decoding: try Data(contentsOf: vmm.err), as: UTF8.self)
            if vmm.process.terminationStatus == 0 && stdout == "Hello from a Swiftlet x86_64 guest\n" && stderr == TestSupport.i8042ResetEnd {
                good += 1
            } else {
                XCTFail("swiftlet \(index): exit \(vmm.process.terminationStatus), stdout \(stdout.debugDescription), stderr \(stderr)")
            }
        }
        XCTAssertEqual(good, running.count, "\(good) of \(running.count) reached the marker and exited 0")
    }
}
