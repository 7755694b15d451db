import XCTest
@testable import SwiftletCore

/// `swiftlet jail`'s pure parts: its flags, the cgroup values, and how the VMM's
/// arguments are planned into the jail and rewritten.
func parseJail(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> JailOptions {
    let parsed = try JailOptions.parse(arguments)
    var options: JailOptions?
    if case .jail(let value) = parsed { options = value }
    return try XCTUnwrap(options, "\(arguments) parsed as \(parsed), not as a jail", file: file, line: line)
}

/// The one-line message of a refused input; fails if it was accepted or not bad input.
func jailRefusal(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        let parsed = try JailOptions.parse(arguments)
        XCTFail("\(arguments) was accepted: \(parsed)", file: file, line: line)
    } catch {
        XCTAssertTrue(error.isBadInput, "\(error) is not bad input (exit 2)", file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), "more than one line: \(error)", file: file, line: line)
        return error.description
    }
    return ""
}

final class JailOptionsTests: XCTestCase {
    let base = ["--id", "vm-1", "--uid", "1000", "--gid", "100"]

    func testMinimalAndDefaults() throws {
        let options = try parseJail(base + ["--", "--kernel", "/k"])
        XCTAssertEqual(options.id, "vm-1")
        XCTAssertEqual(options.uid, 1000)
        XCTAssertEqual(options.gid, 100)
        XCTAssertEqual(options.chrootBaseDir, "/srv/jailer")
        XCTAssertEqual(options.rlimitNoFile, 2048)
        XCTAssertNil(options.rlimitFileSize)
        XCTAssertNil(options.execFile)
        XCTAssertNil(options.netns)
        XCTAssertEqual(options.cgroupSettings, [])
        XCTAssertEqual(options.runArguments, ["--kernel", "/k"])
        XCTAssertFalse(options.daemonize)
    }

    func testAllFlags() throws {
        let options = try parseJail(["--id=a", "--uid=5", "--gid", "6", "--exec-file", "/bin/fc", "--chroot-base-dir", "/jails",
                                     "--netns", "/var/run/netns/n", "--cgroup-root", "/cg", "--cpu-max", "0.5",
                                     "--memory-max", "512M", "--pids-max", "64", "--cgroup", "cpu.weight=50",
                                     "--rlimit-nofile", "4096", "--rlimit-fsize", "1G", "--daemonize", "--new-pid-ns",
                                     "--cgroup-version", "2", "--", "--kernel", "/k", "--", "x"])
        XCTAssertEqual(options.execFile, "/bin/fc")
        XCTAssertEqual(options.chrootBaseDir, "/jails")
        XCTAssertEqual(options.netns, "/var/run/netns/n")
        XCTAssertEqual(options.cgroupRoot, "/cg")
        XCTAssertEqual(options.cgroupSettings.map(\.description),
                       ["cpu.max=50000 100000", "memory.max=536870912", "pids.max=64", "cpu.weight=50"])
        XCTAssertEqual(options.rlimitNoFile, 4096)
        XCTAssertEqual(options.rlimitFileSize, 1 << 30)
        XCTAssertTrue(options.daemonize)
        XCTAssertEqual(options.runArguments, ["--kernel", "/k", "--", "x"], "only the first -- is the jail's")
    }

    func testFirecrackerResourceLimits() throws {
        let options = try parseJail(base + ["--resource-limit", "no-file=100", "--resource-limit", "fsize=2048", "--", "x"])
        XCTAssertEqual(options.rlimitNoFile, 100)
        XCTAssertEqual(options.rlimitFileSize, 2048)
    }

    func testRefusals() {
        XCTAssertEqual(jailRefusal(["--uid", "1", "--gid", "1", "--", "x"]), "--id ID is required (see swiftlet jail --help)")
        XCTAssertTrue(jailRefusal(["--id", "a", "--gid", "1", "--", "x"]).hasPrefix("--uid UID is required"))
        XCTAssertTrue(jailRefusal(["--id", "a", "--uid", "1", "--", "x"]).hasPrefix("--gid GID is required"))
        XCTAssertTrue(jailRefusal(base).hasPrefix("no VMM arguments"))
        XCTAssertTrue(jailRefusal(base + ["--"]).hasPrefix("no VMM arguments"))
        XCTAssertTrue(jailRefusal(base + ["--kernel", "/k"]).hasPrefix("unknown option --kernel"))
        XCTAssertTrue(jailRefusal(base + ["stray", "--", "x"]).hasPrefix("unexpected argument stray"))
        XCTAssertTrue(jailRefusal(["--id", "a/b", "--uid", "1", "--gid", "1", "--", "x"]).hasPrefix("--id needs 1 to 64"))
        XCTAssertTrue(jailRefusal(["--id", String(repeating: "a", count: 65), "--uid", "1", "--gid", "1", "--", "x"]).hasPrefix("--id needs"))
        XCTAssertTrue(jailRefusal(["--id", "a", "--uid", "-1", "--gid", "1", "--", "x"]).hasPrefix("--uid takes a numeric id"))
        XCTAssertTrue(jailRefusal(["--id", "a", "--uid", "4294967295", "--gid", "1", "--", "x"]).hasPrefix("--uid takes"))
        XCTAssertTrue(jailRefusal(["--id", "a", "--uid", "alice", "--gid", "1", "--", "x"]).hasPrefix("--uid takes"))
        XCTAssertTrue(jailRefusal(base + ["--uid"]).hasPrefix("--uid needs a value"))
        XCTAssertTrue(jailRefusal(base + ["--netns", "--", "x"]).hasPrefix("--netns needs a value"))
        XCTAssertTrue(jailRefusal(base + ["--chroot-base-dir", "rel", "--", "x"]).hasPrefix("--chroot-base-dir needs an absolute path"))
        XCTAssertTrue(jailRefusal(base + ["--daemonize=yes", "--", "x"]).hasPrefix("--daemonize takes no value"))
        XCTAssertTrue(jailRefusal(base + ["--cgroup-version", "1", "--", "x"]).hasSuffix("cgroup v2 only"))
        XCTAssertTrue(jailRefusal(base + ["--node", "0", "--", "x"]).hasPrefix("--node:"))
        XCTAssertTrue(jailRefusal(base + ["--rlimit-nofile", "10", "--", "x"]).hasPrefix("--rlimit-nofile takes a whole number from 64"))
        XCTAssertTrue(jailRefusal(base + ["--resource-limit", "core=0", "--", "x"]).hasPrefix("--resource-limit: unknown resource 'core'"))
        XCTAssertTrue(jailRefusal(base + ["--resource-limit", "fsize", "--", "x"]).hasPrefix("--resource-limit takes"))
        XCTAssertTrue(jailRefusal(base + ["--no-cgroup", "--pids-max", "5", "--", "x"]).hasPrefix("--no-cgroup cannot go with pids.max"))
        XCTAssertTrue(jailRefusal(base + ["--no-cgroup", "--cgroup-root", "/c", "--", "x"]).hasPrefix("--no-cgroup and --cgroup-root"))
        XCTAssertTrue(jailRefusal(base + ["--cpu-max", "0.5", "--cgroup", "cpu.max=max", "--", "x"]).hasPrefix("--cgroup cpu.max is given twice"))
    }

    func testRootIsRefusedUnlessAllowed() throws {
        XCTAssertEqual(jailRefusal(["--id", "a", "--uid", "0", "--gid", "1", "--", "x"]),
                       "--uid 0 would run the VMM as root, which defeats the jail: give an unprivileged id, or --allow-root to do it anyway")
        XCTAssertTrue(jailRefusal(["--id", "a", "--uid", "1", "--gid", "0", "--", "x"]).hasPrefix("--gid 0 would run"))
        let options = try parseJail(["--id", "a", "--uid", "0", "--gid", "0", "--allow-root", "--", "x"])
        XCTAssertEqual(options.uid, 0)
    }

    func testHelp() throws {
        XCTAssertEqual(try JailOptions.parse(base + ["--help"]), .help)
        XCTAssertEqual(try JailOptions.parse(["-h"]), .help)
        XCTAssertTrue(JailOptions.usage.contains("--cpu-max"))
    }
}

final class JailCgroupTests: XCTestCase {
    func testCPUMax() throws {
        XCTAssertEqual(try JailCgroup.parseCPUMax("0.5"), "50000 100000")
        XCTAssertEqual(try JailCgroup.parseCPUMax(".25"), "25000 100000")
        XCTAssertEqual(try JailCgroup.parseCPUMax("1.0"), "100000 100000")
        XCTAssertEqual(try JailCgroup.parseCPUMax("2.125"), "212500 100000")
        XCTAssertEqual(try JailCgroup.parseCPUMax("0.01"), "1000 100000")
        XCTAssertEqual(try JailCgroup.parseCPUMax("50000"), "50000 100000")
        XCTAssertEqual(try JailCgroup.parseCPUMax("25000/50000"), "25000 50000")
        XCTAssertEqual(try JailCgroup.parseCPUMax("max"), "max 100000")
        XCTAssertEqual(try JailCgroup.parseCPUMax("max/20000"), "max 20000")
    }

    func testCPUMaxRefusals() {
        for bad in ["", "half", "0.5.1", "0.", ".", "-1", "1e5", "0.0", "50000/", "/100000", "50000/1x", "1.1234567", "0.5/100000"] {
            XCTAssertThrowsError(try JailCgroup.parseCPUMax(bad), "'\(bad)'") { error in
                XCTAssertTrue((error as! SwiftletError).isBadInput)
            }
        }
        XCTAssertThrowsError(try JailCgroup.parseCPUMax("0.005")) {
            XCTAssertEqual("\($0)", "--cpu-max 0.005 is a quota of 500 us per 100000 us: at least 1000 us (0.01 CPU) is needed")
        }
        XCTAssertThrowsError(try JailCgroup.parseCPUMax("1")) {
            XCTAssertTrue("\($0)".hasPrefix("--cpu-max quota 1 us is below the kernel's minimum"), "\($0)")
        }
        XCTAssertThrowsError(try JailCgroup.parseCPUMax("50000/999")) {
            XCTAssertEqual("\($0)", "--cpu-max period 999 us is outside the kernel's 1000 to 1000000 us")
        }
        XCTAssertThrowsError(try JailCgroup.parseCPUMax("50000/1000001"))
    }

    func testMemoryAndPids() throws {
        XCTAssertEqual(try JailCgroup.parseMemoryMax("512M"), "536870912")
        XCTAssertEqual(try JailCgroup.parseMemoryMax("1G"), "1073741824")
        XCTAssertEqual(try JailCgroup.parseMemoryMax("2048k"), "2097152")
        XCTAssertEqual(try JailCgroup.parseMemoryMax("1048576"), "1048576")
        XCTAssertEqual(try JailCgroup.parseMemoryMax("max"), "max")
        XCTAssertThrowsError(try JailCgroup.parseMemoryMax("512")) {
            XCTAssertEqual("\($0)", "--memory-max 512 is 512 bytes: below 1 MiB no VMM can run (use a suffix, e.g. 512M)")
        }
        XCTAssertThrowsError(try JailCgroup.parseMemoryMax("12X")) { XCTAssertTrue("\($0)".contains("unknown unit 'X'")) }
        XCTAssertThrowsError(try JailCgroup.parseMemoryMax("M"))
        XCTAssertThrowsError(try JailCgroup.parseMemoryMax("-5M"))
        XCTAssertThrowsError(try JailCgroup.parseMemoryMax("99999999999T"), "overflow is refused, not wrapped")
        XCTAssertEqual(try JailCgroup.parsePidsMax("32"), "32")
        XCTAssertEqual(try JailCgroup.parsePidsMax("max"), "max")
        for bad in ["0", "-1", "x", "", "99999999999"] {
            XCTAssertThrowsError(try JailCgroup.parsePidsMax(bad), "'\(bad)'")
        }
    }

    func testGenericSetting() throws {
        let setting = try JailCgroup.parseSetting("cpu.weight=50")
        XCTAssertEqual(setting.file, "cpu.weight")
        XCTAssertEqual(setting.controller, "cpu")
        XCTAssertEqual(try JailCgroup.parseSetting("cpuset.cpus=0-1").value, "0-1")
        XCTAssertEqual(try JailCgroup.parseSetting("memory.high=max").controller, "memory")
        for bad in ["cpu.weight", "../x=1", "cpu/max=1", "cpu=1", ".max=1", "cpu.=1", "Cpu.max=1", "cpu.max=", "cpu.max=a\nb"] {
            XCTAssertThrowsError(try JailCgroup.parseSetting(bad), "'\(bad)'")
        }
        XCTAssertThrowsError(try JailCgroup.parseSetting("cgroup.procs=1")) {
            XCTAssertTrue("\($0)".hasSuffix("belongs to the hierarchy, not a controller: the jail manages it"))
        }
    }

    func testControllers() {
        let settings = [CgroupSetting(file: "cpu.max", value: "x"), CgroupSetting(file: "memory.max", value: "y"),
                        CgroupSetting(file: "cpu.weight", value: "z"), CgroupSetting(file: "pids.max", value: "1")]
        XCTAssertEqual(JailCgroup.controllers(of: settings), ["cpu", "memory", "pids"])
        XCTAssertEqual(JailCgroup.subtreeControlText(["cpu", "memory", "pids"]), "+cpu +memory +pids")
        XCTAssertEqual(JailCgroup.controllers(of: []), [])
    }

    func testCgroup2MountPoint() {
        let v1 = """
        25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
        30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
        31 30 0:27 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory
        """
        XCTAssertNil(JailCgroup.cgroup2MountPoint(mountinfo: v1))
        let v2 = v1 + "\n40 25 0:35 / /tmp/my\\040cgroup rw,relatime shared:20 - cgroup2 none rw\n41 25 0:36 / /other rw - cgroup2 none rw"
        XCTAssertEqual(JailCgroup.cgroup2MountPoint(mountinfo: v2), "/tmp/my cgroup")
        XCTAssertEqual(JailCgroup.cgroup2MountPoint(mountinfo: "28 1 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate"),
                       "/sys/fs/cgroup")
        XCTAssertNil(JailCgroup.cgroup2MountPoint(mountinfo: "garbage\n- cgroup2\n"))
    }
}

final class JailPlanTests: XCTestCase {
    func options(_ run: [String], id: String = "vm1") throws -> JailOptions {
        try parseJail(["--id", id, "--uid", "1000", "--gid", "1000", "--chroot-base-dir", "/srv/j", "--"] + run)
    }

    func testRewritesImagesToJailPaths() throws {
        let plan = try JailPlan.make(try options(["--kernel", "/images/Image", "--initrd=rel/initrd.gz", "--cmdline", "--kernel x",
                                                  "--disk", "path=/a/root.img,id=root", "--disk", "path=/b/root.img,readonly=on",
                                                  "--memory", "128"]),
                                     execPath: "/usr/bin/swiftlet", cwd: "/home/op")
        XCTAssertEqual(plan.instanceDirectory, "/srv/j/vm1")
        XCTAssertEqual(plan.root, "/srv/j/vm1/root")
        XCTAssertEqual(plan.execName, "swiftlet")
        XCTAssertEqual(plan.arguments, ["swiftlet", "run", "--kernel", "/Image", "--initrd=/initrd.gz", "--cmdline", "--kernel x",
                                        "--disk", "path=/root.img,id=root", "--disk", "path=/2-root.img,readonly=on",
                                        "--memory", "128", "--id", "vm1"])
        XCTAssertEqual(plan.files, [
            JailFile(hostPath: "/images/Image", jailPath: "/Image", writable: false, what: "kernel"),
            JailFile(hostPath: "/home/op/rel/initrd.gz", jailPath: "/initrd.gz", writable: false, what: "initrd"),
            JailFile(hostPath: "/a/root.img", jailPath: "/root.img", writable: true, what: "disk"),
            JailFile(hostPath: "/b/root.img", jailPath: "/2-root.img", writable: false, what: "disk"),
        ])
        XCTAssertFalse(plan.needsTun)
        XCTAssertNil(plan.configFile)
    }

    func testReservedNamesAreNotReused() throws {
        let plan = try JailPlan.make(try options(["--kernel", "/x/swiftlet", "--initrd", "/x/dev", "--disk", "path=/x/run",
                                                  "--api-sock", "/run/api.sock"]),
                                     execPath: "/usr/bin/swiftlet", cwd: "/")
        XCTAssertEqual(plan.files.map(\.jailPath), ["/2-swiftlet", "/2-dev", "/2-run"])
        XCTAssertEqual(plan.directories, ["/run"])
        XCTAssertEqual(plan.hostDirectories, ["/srv/j/vm1/root/run"])
    }

    func testJailPathsAreKeptAndTheirDirectoriesMade() throws {
        let plan = try JailPlan.make(try options(["--api-sock", "/run/fc/api.sock", "--log-path=/logs/fc.log", "--metrics-path", "m.fifo",
                                                  "--vsock", "cid=3,socket=/run/v.sock", "--net", "tap=tap0", "--id", "other"]),
                                     execPath: "/opt/swiftlet-x86_64", cwd: "/")
        XCTAssertEqual(plan.arguments, ["swiftlet-x86_64", "run", "--api-sock", "/run/fc/api.sock", "--log-path=/logs/fc.log",
                                        "--metrics-path", "m.fifo", "--vsock", "cid=3,socket=/run/v.sock", "--net", "tap=tap0",
                                        "--id", "other"], "an --id of the VMM's own is kept")
        XCTAssertEqual(plan.directories, ["/run", "/run/fc", "/logs"])
        XCTAssertTrue(plan.needsTun)
        XCTAssertEqual(plan.files, [])
    }

    func testDotDotInJailPathsIsRefused() throws {
        XCTAssertThrowsError(try JailPlan.make(try options(["--api-sock", "/../../etc/x.sock"]), execPath: "/s", cwd: "/")) {
            XCTAssertTrue(($0 as! SwiftletError).isBadInput)
            XCTAssertTrue("\($0)".hasPrefix("--api-sock /../../etc/x.sock: '..' is not allowed"), "\($0)")
        }
        XCTAssertThrowsError(try JailPlan.make(try options(["--api-sock", "/s", "--vsock", "cid=3,socket=a/../../b"]), execPath: "/s", cwd: "/"))
    }

    func testTheVMMsParserJudgesFirst() throws {
        XCTAssertThrowsError(try JailPlan.make(try options(["--kernel", "/k", "--cpus", "0"]), execPath: "/s", cwd: "/")) {
            XCTAssertEqual("\($0)", "--cpus needs a positive whole number, got '0'")
        }
        XCTAssertThrowsError(try JailPlan.make(try options(["--bogus"]), execPath: "/s", cwd: "/")) {
            XCTAssertTrue("\($0)".hasPrefix("unknown option --bogus"))
        }
        XCTAssertThrowsError(try JailPlan.make(try options(["--help"]), execPath: "/s", cwd: "/")) {
            XCTAssertTrue("\($0)".hasPrefix("--help and --version are the VMM's own"))
        }
    }

    func testConfigFileAndFirecrackerDialect() throws {
        let plan = try JailPlan.make(try options(["--config-file", "vm.json", "--no-api", "--", "ignored"]),
                                     execPath: "/usr/bin/firecracker", cwd: "/etc/vms")
        XCTAssertEqual(plan.dialect, .firecracker)
        XCTAssertEqual(plan.configFile, "/etc/vms/vm.json")
        XCTAssertEqual(plan.arguments, ["firecracker", "--config-file", "/config.json", "--no-api", "--id", "vm1", "--", "ignored"],
                       "no `run` for Firecracker's command line; --id before its --")
    }

    func testSameFileTwiceIsOnePlacement() throws {
        var plan = try JailPlan.make(try options(["--kernel", "/k/Image"]), execPath: "/s", cwd: "/")
        XCTAssertEqual(try plan.place("/k/Image", what: "disk", writable: true, cwd: "/"), "/Image")
        XCTAssertEqual(plan.files.count, 1)
        XCTAssertTrue(plan.files[0].writable, "a writable use makes the placement writable")
    }

    func testEveryValueFlagTakesAValue() {
        // If RunOptions stopped taking a value for one of these, the rewriter would skip an
        // argument it should read: each alone must be refused for its missing value.
        for flag in JailPlan.valueFlags {
            XCTAssertThrowsError(try RunOptions.parse([flag]), flag) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasSuffix("needs a value"), "\(flag): \(text)")
            }
        }
    }

    func testEveryFlagTheHelpShowsWithAValueIsAValueFlag() {
        // The other direction: a flag of `swiftlet run` or Firecracker's missing from the list
        // would leave its value to be read as a flag or an image path of its own.
        var shown: Set<String> = []
        for line in (RunOptions.usage + "\n" + RunOptions.firecrackerUsage).split(separator: "\n") {
            for item in line.split(separator: ",") {
                let words = item.split(separator: " ")
                guard words.count >= 2, words[0].hasPrefix("--"), let first = words[1].first,
                      first.isUppercase || words[1].contains("=") || words[1] == "2M" else { continue }
                shown.insert(String(words[0]))
            }
        }
        XCTAssertTrue(shown.isSuperset(of: ["--kernel", "--disk", "--api-allow", "--audit-log", "--start-time-cpu-us"]), "\(shown.sorted())")
        XCTAssertEqual(shown.subtracting(JailPlan.valueFlags), [], "value flags the jail does not know")
    }

    func testAuditLogIsAJailPathWithItsDirectoryMade() throws {
        let plan = try JailPlan.make(try options(["--kernel", "/k/Image", "--audit-log", "/var/audit/vm.log", "--api-allow", "uid=0",
                                                  "--api-sock", "/run/api.sock"]),
                                     execPath: "/s", cwd: "/")
        XCTAssertEqual(Array(plan.arguments.suffix(8)), ["--audit-log", "/var/audit/vm.log", "--api-allow", "uid=0",
                                                         "--api-sock", "/run/api.sock", "--id", "vm1"])
        XCTAssertEqual(plan.directories.sorted(), ["/run", "/var", "/var/audit"])
    }

    func testNeedsInterpreter() {
        func elf(_ types: [UInt32]) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 64 + 56 * types.count)
            bytes[0...5] = [0x7F, 0x45, 0x4C, 0x46, 2, 1]
            bytes[32] = 64            // e_phoff
            bytes[54] = 56            // e_phentsize
            bytes[56] = UInt8(types.count)
            for (i, type) in types.enumerated() { bytes[64 + 56 * i] = UInt8(type) }
            return bytes
        }
        XCTAssertEqual(JailPlan.needsInterpreter(elfHeader: elf([6, 3, 1])), true)
        XCTAssertEqual(JailPlan.needsInterpreter(elfHeader: elf([6, 1, 1])), false)
        XCTAssertNil(JailPlan.needsInterpreter(elfHeader: Array("#!/bin/sh\n".utf8) + [UInt8](repeating: 0, count: 64)))
        var truncated = elf([1, 1])
        truncated.removeLast(10)
        XCTAssertNil(JailPlan.needsInterpreter(elfHeader: truncated))
    }
}

final class JailRootTests: XCTestCase {
    func testRootIsInitramfs() {
        XCTAssertTrue(JailPlan.rootIsInitramfs(mountinfo: "1 1 0:2 / / rw shared:1 - rootfs rootfs rw,size=1000k\n20 1 0:5 / /dev rw - devtmpfs dev rw"))
        XCTAssertFalse(JailPlan.rootIsInitramfs(mountinfo: "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n26 25 0:5 / /tmp rw - rootfs x rw"))
        XCTAssertFalse(JailPlan.rootIsInitramfs(mountinfo: ""))
    }
}
