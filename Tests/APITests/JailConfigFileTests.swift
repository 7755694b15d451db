import XCTest
@testable import API
@testable import SwiftletCore

/// `swiftlet jail --config-file`: the file's host paths go into the jail and are rewritten.
final class JailConfigFileTests: XCTestCase {
    func plan() throws -> JailPlan {
        let parsed = try JailOptions.parse(["--id", "a", "--uid", "1", "--gid", "1", "--", "--config-file", "/vms/a.json"])
        var options: JailOptions?
        if case .jail(let value) = parsed { options = value }
        return try JailPlan.make(try XCTUnwrap(options), execPath: "/bin/swiftlet", cwd: "/")
    }

    func testPathsAreRewritten() throws {
        var plan = try plan()
        let text = """
        {"boot-source": {"kernel_image_path": "/img/vmlinux", "initrd_path": "initrd", "boot_args": "console=ttyS0"},
         "drives": [{"drive_id": "root", "path_on_host": "/img/root.ext4", "is_root_device": true, "is_read_only": false},
                    {"drive_id": "data", "path_on_host": "/img/data.ext4", "is_root_device": false, "is_read_only": true}],
         "machine-config": {"vcpu_count": 2, "mem_size_mib": 256},
         "logger": {"log_path": "/logs/fc.log", "level": "Info"},
         "vsock": {"guest_cid": 3, "uds_path": "/run/v.sock"},
         "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}]}
        """
        let out = try JailConfigFile.rewrite(Array(text.utf8), plan: &plan, cwd: "/vms")
        let json = try JSONValue.parse(out)
        XCTAssertEqual(json["boot-source"]?["kernel_image_path"], .string("/vmlinux"))
        XCTAssertEqual(json["boot-source"]?["initrd_path"], .string("/initrd"))
        XCTAssertEqual(json["boot-source"]?["boot_args"], .string("console=ttyS0"))
        guard case .array(let drives)? = json["drives"] else { return XCTFail("drives: \(json)") }
        XCTAssertEqual(drives[0]["path_on_host"], .string("/root.ext4"))
        XCTAssertEqual(drives[1]["path_on_host"], .string("/data.ext4"))
        XCTAssertEqual(json["machine-config"]?["vcpu_count"], .integer(2))
        XCTAssertEqual(json["logger"]?["log_path"], .string("/logs/fc.log"), "the VMM's own paths are the jail's")
        XCTAssertEqual(plan.files, [
            JailFile(hostPath: "/img/vmlinux", jailPath: "/vmlinux", writable: false, what: "kernel"),
            JailFile(hostPath: "/vms/initrd", jailPath: "/initrd", writable: false, what: "initrd"),
            JailFile(hostPath: "/img/root.ext4", jailPath: "/root.ext4", writable: true, what: "disk"),
            JailFile(hostPath: "/img/data.ext4", jailPath: "/data.ext4", writable: false, what: "disk"),
        ])
        XCTAssertEqual(plan.directories, ["/logs", "/run"])
        XCTAssertTrue(plan.needsTun)
        // The rewritten file is what the VMM's own parser accepts.
        var config = VMConfig()
        XCTAssertNoThrow(try ConfigFile.apply(out, to: &config))
        XCTAssertEqual(config.kernelPath, "/vmlinux")
    }

    func testBadFilesAreOneLine() throws {
        var plan = try plan()
        XCTAssertThrowsError(try JailConfigFile.rewrite(Array("[1]".utf8), plan: &plan, cwd: "/")) {
            XCTAssertEqual("\($0)", "config file /vms/a.json: expected a JSON object, got an array")
        }
        XCTAssertThrowsError(try JailConfigFile.rewrite(Array("{\"a\": ".utf8), plan: &plan, cwd: "/")) {
            XCTAssertTrue(($0 as! SwiftletError).isBadInput)
            XCTAssertTrue("\($0)".hasPrefix("config file /vms/a.json: "))
        }
        XCTAssertThrowsError(try JailConfigFile.rewrite(Array("{\"logger\": {\"log_path\": \"/../x/y\"}}".utf8), plan: &plan, cwd: "/")) {
            XCTAssertTrue("\($0)".contains("'..' is not allowed"), "\($0)")
        }
    }
}
