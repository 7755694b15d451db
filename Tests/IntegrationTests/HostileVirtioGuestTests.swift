import Foundation
import XCTest

/// The hostile virtio guest (Tests/Guests/hostile-virtio-x86_64.S) on this host's /dev/kvm:
/// it drives the virtio-rng's virtio-mmio transport and queue with garbage (status out of
/// order, bad features, bad queue sizes, rings outside RAM, looping, out-of-range, oversized
/// and misordered chains, indirect tables misused, avail.idx jumps), checks that the device
/// answers each exactly as the queue code says (DEVICE_NEEDS_RESET, or a used entry of the
/// right length), that a good request works after every reset, and prints its survival line
/// only when every check held. The VMM must neither trap nor hang.
final class HostileVirtioGuestTests: XCTestCase {
    override func setUpWithError() throws { try TestSupport.requireKVM() }

    func testHostileVirtioGuestAgainstTheEntropyDevice() throws {
        let image = try TestSupport.guestImage("hostile-virtio-x86_64")
        let result = try TestSupport.run(TestSupport.swiftletBinary,
                                         ["run", "--no-reboot", "--kernel", image, "--memory", "64", "--rng"], timeout: 120)
        check(result, rngAt: "0xd0000000")
    }

    /// With a disk first, the rng is in slot 1 (0xD000_1000); the guest finds it there and
    /// leaves the disk alone.
    func testHostileVirtioGuestWithTheEntropyDeviceBehindADisk() throws {
        let image = try TestSupport.guestImage("hostile-virtio-x86_64")
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-hostile-virtio-\(UUID().uuidString).img").path
        XCTAssertTrue(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        defer { try? FileManager.default.removeItem(atPath: disk) }
        let result = try TestSupport.run(TestSupport.swiftletBinary,
                                         ["run", "--no-reboot", "--kernel", image, "--memory", "64", "--disk", "path=\(disk)", "--rng"],
                                         timeout: 120)
        check(result, rngAt: "0xd0001000")
        let contents = try Data(contentsOf: URL(fileURLWithPath: disk))
        XCTAssertEqual(contents, Data(count: 1 << 20), "the guest never touched the disk")
    }

    private func check(_ result: TestSupport.Result, rngAt base: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 0, String(result.stderr.prefix(2000)), file: file, line: line)
        XCTAssertFalse(result.stdout.contains("FAIL"), result.stdout, file: file, line: line)
        XCTAssertTrue(result.stdout.contains("hostile-virtio: 1 identity ok: virtio-rng, version 2, at \(base)\n"),
                      result.stdout, file: file, line: line)
        for step in 2...6 {
            XCTAssertTrue(result.stdout.contains("hostile-virtio: \(step) "), "no line for step \(step): \(result.stdout)",
                          file: file, line: line)
        }
        XCTAssertTrue(result.stdout.hasSuffix("\nhostile virtio guest survived\n"), String(result.stdout.suffix(300)),
                      file: file, line: line)
        XCTAssertEqual(result.stderr, TestSupport.i8042ResetEnd, file: file, line: line)
    }
}
