import XCTest
@testable import API
import SwiftletCore

/// Firecracker's --config-file read by the API's parsers.
final class ConfigFileTests: XCTestCase {
    func configured(_ text: String, onto base: VMConfig = VMConfig(), file: StaticString = #filePath, line: UInt = #line) throws -> VMConfig {
        var config = base
        try ConfigFile.apply(Array(text.utf8), to: &config)
        return config
    }

    func refusal(_ text: String, onto base: VMConfig = VMConfig(), file: StaticString = #filePath, line: UInt = #line) -> String {
        var config = base
        do {
            try ConfigFile.apply(Array(text.utf8), to: &config)
            XCTFail("accepted: \(text)", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error.isBadInput, file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "one line", file: file, line: line)
            return error.description
        }
    }

    /// What Kata Containers writes (types.FcConfig marshalled with MarshalIndent): boot
    /// source, machine config with smt, drives with empty rate limiters left out, a
    /// network interface whose unset limiters are empty objects, vsock with its id,
    /// logger and metrics on FIFOs.
    func testKataContainersConfiguration() throws {
        let kata = """
        {
        \t"boot-source": {
        \t\t"kernel_image_path": "/vmlinux",
        \t\t"boot_args": "console=hvc0 pci=off reboot=k panic=1 iommu=off net.ifnames=0"
        \t},
        \t"machine-config": {
        \t\t"mem_size_mib": 2048,
        \t\t"smt": false,
        \t\t"vcpu_count": 1
        \t},
        \t"vsock": {
        \t\t"guest_cid": 3,
        \t\t"uds_path": "/kata.hvsock",
        \t\t"vsock_id": "root"
        \t},
        \t"logger": {
        \t\t"level": "Error",
        \t\t"log_path": "/logs.fifo"
        \t},
        \t"metrics": {
        \t\t"metrics_path": "/metrics.fifo"
        \t},
        \t"drives": [
        \t\t{
        \t\t\t"drive_id": "rootfs",
        \t\t\t"is_read_only": true,
        \t\t\t"is_root_device": false,
        \t\t\t"path_on_host": "/rootfs"
        \t\t},
        \t\t{
        \t\t\t"drive_id": "drive_0",
        \t\t\t"is_read_only": false,
        \t\t\t"is_root_device": false,
        \t\t\t"path_on_host": "/drive_0"
        \t\t}
        \t],
        \t"network-interfaces": [
        \t\t{
        \t\t\t"guest_mac": "02:42:ac:11:00:02",
        \t\t\t"host_dev_name": "tap0_kata",
        \t\t\t"iface_id": "eth0",
        \t\t\t"rx_rate_limiter": {},
        \t\t\t"tx_rate_limiter": {}
        \t\t}
        \t]
        }
        """
        let config = try configured(kata)
        XCTAssertEqual(config.kernelPath, "/vmlinux")
        XCTAssertEqual(config.cmdline, "console=hvc0 pci=off reboot=k panic=1 iommu=off net.ifnames=0")
        XCTAssertEqual(config.cpus, 1)
        XCTAssertEqual(config.memoryMiB, 2048)
        XCTAssertEqual(config.vsock, VsockConfig(guestCID: 3, udsPath: "/kata.hvsock"))
        XCTAssertEqual(config.logger, LoggerConfig(logPath: "/logs.fifo", level: .error))
        XCTAssertEqual(config.metrics, MetricsConfig(path: "/metrics.fifo"))
        XCTAssertEqual(config.disks.map { $0.id }, ["rootfs", "drive_0"])
        XCTAssertTrue(config.disks[0].readOnly)
        XCTAssertEqual(config.networkInterfaces.map { $0.tapName }, ["tap0_kata"])
        XCTAssertEqual(config.networkInterfaces[0].mac?.description, "02:42:ac:11:00:02")
    }

    func testSectionsApplyAsTheRequestsDo() throws {
        var base = VMConfig()
        base.logger = LoggerConfig(logPath: "/cli.log", showLevel: true)   // --log-path --show-level
        let config = try configured("""
        {"entropy": {"rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}},
         "drives": [{"drive_id": "data", "path_on_host": "/d", "is_root_device": false},
                    {"drive_id": "root", "path_on_host": "/r", "is_root_device": true, "partuuid": "1234-01"}],
         "boot-source": {"kernel_image_path": "/k", "initrd_path": null},
         "machine-config": {"vcpu_count": 2, "mem_size_mib": 512, "huge_pages": "2M", "track_dirty_pages": true},
         "logger": {"level": "Info"},
         "balloon": null, "mmds-config": null}
        """, onto: base)
        XCTAssertTrue(config.entropy)
        XCTAssertEqual(config.entropyRateLimiter?.bandwidth?.size, 1000)
        XCTAssertEqual(config.disks.map { $0.id }, ["root", "data"], "the root device goes first, as with PUT /drives")
        XCTAssertEqual(config.bootArguments(default: "console=ttyS0"), "console=ttyS0 root=PARTUUID=1234-01 rw")
        XCTAssertNil(config.initrdPath)
        XCTAssertEqual(config.hugePages, .twoMiB)
        XCTAssertTrue(config.trackDirtyPages)
        XCTAssertEqual(config.logger, LoggerConfig(logPath: "/cli.log", level: .info, showLevel: true), "the file's logger updates the command line's")
        // A drive given twice: the later replaces the earlier, as a second PUT does.
        let twice = try configured(#"{"boot-source": {"kernel_image_path": "/k"}, "drives": [{"drive_id": "a", "path_on_host": "/1", "is_root_device": false}, {"drive_id": "a", "path_on_host": "/2", "is_root_device": false}]}"#)
        XCTAssertEqual(twice.disks.map { $0.path }, ["/2"])
        // Only what the file names changes: machine-config left out keeps the command line's.
        var firecracker = VMConfig()
        firecracker.memoryMiB = 128
        XCTAssertEqual(try configured(#"{"boot-source": {"kernel_image_path": "/k"}}"#, onto: firecracker).memoryMiB, 128)
    }

    func testBadConfigurationsAreOneLineNamingThePlace() {
        let cases: [(String, String)] = [
            ("", "invalid JSON at byte 0"),
            ("{", "invalid JSON"),
            ("[]", "the configuration must be a JSON object, got an array"),
            ("{}", "missing required section \"boot-source\""),
            (#"{"boot-source": {}}"#, "boot-source: missing required field \"kernel_image_path\""),
            (#"{"boot-source": []}"#, "boot-source must be a JSON object, got an array"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "balloon": {"amount_mib": 1}}"#, "\"balloon\" is not supported: Swiftlet has no balloon device"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "mmds-config": {}}"#, "\"mmds-config\" is not supported: Swiftlet has no MMDS"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "cpu-config": "/t.json"}"#, "\"cpu-config\" is not supported"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "drive": []}"#, "unknown section \"drive\""),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "drives": {}}"#, "drives must be an array, got an object"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "drives": [{"drive_id": "a", "is_root_device": false}]}"#,
             "drives[0]: missing required field \"path_on_host\""),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "drives": [{"drive_id": "a", "path_on_host": "/a", "is_root_device": true}, {"drive_id": "b", "path_on_host": "/b", "is_root_device": true}]}"#,
             "only one disk can be the root device"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "network-interfaces": [1]}"#, "network-interfaces[0] must be a JSON object, got an integer"),
            // Found by the config-file fuzz target: a tap name with a newline made the
            // duplicate-tap refusal two lines.
            (#"{"boot-source": {"kernel_image_path": "/k"}, "network-interfaces": [{"iface_id": "a", "host_dev_name": "t\n"}]}"#,
             "network-interfaces[0]: host_dev_name must be a tap name of 1 to 15 characters, without '/', ':' or spaces"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "smt": true}}"#,
             "machine-config: Machine config error: Enabling simultaneous multithreading is not supported"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 1}}"#, "machine-config: missing required field \"mem_size_mib\""),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 63, "huge_pages": "2M"}}"#,
             "whole 2 MiB pages"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "vsock": {"guest_cid": 2, "uds_path": "/v"}}"#, "vsock: guest_cid must be between 3 and"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "logger": {"level": "loud"}}"#, "logger: level must be"),
            (#"{"boot-source": {"kernel_image_path": "/k"}, "metrics": {}}"#, "metrics: missing required field \"metrics_path\""),
        ]
        for (text, expected) in cases {
            let message = refusal(text)
            XCTAssertTrue(message.contains(expected), "\(text): '\(message)' lacks '\(expected)'")
        }
    }

    /// Firecracker's metrics are configured once: --metrics-path and the file's "metrics"
    /// together are refused.
    func testMetricsFromTheCommandLineAndTheFileConflict() {
        var base = VMConfig()
        base.metrics = MetricsConfig(path: "/cli")
        XCTAssertTrue(refusal(#"{"boot-source": {"kernel_image_path": "/k"}, "metrics": {"metrics_path": "/file"}}"#, onto: base)
            .hasPrefix("metrics: the metrics are configured already"))
    }

    func testOversizedInputIsRefused() {
        let padding = String(repeating: " ", count: ConfigFile.maxBytes)
        XCTAssertTrue(refusal(#"{"boot-source": {"kernel_image_path": "/k"}}"# + padding).contains("more than the limit"))
    }
}
