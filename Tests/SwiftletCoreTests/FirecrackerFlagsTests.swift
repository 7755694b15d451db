import XCTest
@testable import SwiftletCore

/// Firecracker's command line: in `swiftlet run`, and as the whole command line when the
/// binary runs as `firecracker`.
final class FirecrackerFlagsTests: XCTestCase {
    func firecracker(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> VMConfig {
        let parsed = try RunOptions.parse(arguments, dialect: .firecracker)
        guard case .run(let config) = parsed else {
            XCTFail("\(arguments) parsed as \(parsed)", file: file, line: line)
            return VMConfig()
        }
        return config
    }

    func refusal(_ arguments: [String], dialect: CommandLineDialect, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let parsed = try RunOptions.parse(arguments, dialect: dialect)
            XCTFail("\(arguments) parsed as \(parsed)", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error.isBadInput, file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "one line", file: file, line: line)
            return error.description
        }
    }

    func testProgramNameChoosesTheDialect() {
        XCTAssertEqual(CommandLineDialect.forProgramName("firecracker"), .firecracker)
        XCTAssertEqual(CommandLineDialect.forProgramName("firecracker-v1.12.0-x86_64"), .firecracker)
        XCTAssertEqual(CommandLineDialect.forProgramName("swiftlet"), .swiftlet)
        XCTAssertEqual(CommandLineDialect.forProgramName("firecracker.sh"), .swiftlet)
        XCTAssertEqual(CommandLineDialect.forProgramName(""), .swiftlet)
    }

    /// Firecracker with no flags at all: the API on /run/firecracker.socket, waiting.
    func testFirecrackerDefaults() throws {
        let config = try firecracker([])
        XCTAssertEqual(config.apiSocketPath, "/run/firecracker.socket")
        XCTAssertEqual(config.instanceID, "anonymous-instance")
        XCTAssertEqual(config.memoryMiB, 128)
        XCTAssertEqual(config.cpus, 1)
        XCTAssertFalse(config.rebootOnReset, "a guest reset ends Firecracker")
        XCTAssertNil(config.kernelPath)
        XCTAssertEqual(config.apiMaxPayloadBytes, VMConfig.defaultAPIMaxPayloadBytes)
    }

    /// What the Go SDK and Kata Containers pass, and what the jailer adds.
    func testToolsCommandLines() throws {
        let sdk = try firecracker(["--api-sock", "/tmp/fc.sock", "--id", "4b3e2c1a-0d9f-4e8b-a7c6-5d4e3f2a1b0c", "--no-seccomp"])
        XCTAssertEqual(sdk.apiSocketPath, "/tmp/fc.sock")
        XCTAssertEqual(sdk.instanceID, "4b3e2c1a-0d9f-4e8b-a7c6-5d4e3f2a1b0c")
        XCTAssertEqual(sdk.seccomp, .off)
        let kata = try firecracker(["--api-sock", "/run/vc/firecracker/x/root/run/firecracker.socket", "--config-file", "/run/vc/fcConfig.json"])
        XCTAssertEqual(kata.configFilePath, "/run/vc/fcConfig.json")
        XCTAssertEqual(kata.apiSocketPath, "/run/vc/firecracker/x/root/run/firecracker.socket")
        let jailed = try firecracker(["--id", "vm1", "--start-time-us", "1700000000000000", "--start-time-cpu-us", "1500",
                                      "--parent-cpu-time-us", "900", "--", "--config-file", "/fcConfig.json", "--anything"])
        XCTAssertEqual(jailed.processStartTimes, ProcessStartTimes(startTimeUs: 1_700_000_000_000_000, startCPUTimeUs: 1500, parentCPUTimeUs: 900))
        XCTAssertNil(jailed.configFilePath, "what follows -- is not Firecracker's")
    }

    func testEveryFlagIsStored() throws {
        let config = try firecracker(["--no-api", "--config-file", "/vm.json", "--log-path", "/log.fifo", "--level", "debug",
                                      "--module", "api_server", "--show-level", "--show-log-origin", "--metrics-path", "/metrics.fifo",
                                      "--boot-timer", "--http-api-max-payload-size", "102400"])
        XCTAssertNil(config.apiSocketPath, "--no-api: no socket, not even the default")
        XCTAssertEqual(config.configFilePath, "/vm.json")
        XCTAssertEqual(config.logger, LoggerConfig(logPath: "/log.fifo", level: .debug, showLevel: true, showLogOrigin: true, module: "api_server"))
        XCTAssertEqual(config.metrics, MetricsConfig(path: "/metrics.fifo"))
        XCTAssertTrue(config.bootTimer)
        XCTAssertEqual(config.apiMaxPayloadBytes, 102_400)
        XCTAssertNil(try firecracker(["--api-sock", "/s", "--no-api", "--config-file", "/c"]).apiSocketPath, "--no-api wins, as in Firecracker")
    }

    func testLevels() {
        for (text, level) in [("Error", LogLevel.error), ("warning", .warning), ("Warn", .warning), ("INFO", .info),
                              ("Debug", .debug), ("trace", .trace), ("Off", .off)] {
            XCTAssertEqual(LogLevel(text), level, text)
        }
        XCTAssertNil(LogLevel("verbose"))
        XCTAssertNil(LogLevel(""))
        XCTAssertEqual(LogLevel.warning.description, "Warning")
    }

    func testHelpAndVersionAnywhere() throws {
        XCTAssertEqual(try RunOptions.parse(["--id", "bad id!", "--help"], dialect: .firecracker), .help)
        XCTAssertEqual(try RunOptions.parse(["--api-sock", "/s", "--version"], dialect: .firecracker), .version)
        XCTAssertEqual(try RunOptions.parse(["-h"], dialect: .firecracker), .help)
        XCTAssertEqual(try RunOptions.parse(["--version"]), .version)
        XCTAssertEqual(try RunOptions.parse(["--", "--version"], dialect: .firecracker), .run(try firecracker([])), "after --, not Firecracker's")
    }

    func testBadFirecrackerInputIsOneClearLine() {
        let cases: [([String], String)] = [
            (["--id", ""], "--id must be 1 to 64 letters, digits or '-'"),
            (["--id", "a_b"], "--id must be 1 to 64"),
            (["--id", String(repeating: "a", count: 65)], "--id must be 1 to 64"),
            (["--id", "a", "--id", "b"], "--id is given twice"),
            (["--api-sock", "/a", "--api-socket", "/b"], "--api-socket is given twice"),
            (["--no-api"], "--no-api needs --config-file"),
            (["--level", "Loud"], "--level takes Error, Warning, Info, Debug, Trace or Off, got 'Loud'"),
            (["--http-api-max-payload-size", "0"], "--http-api-max-payload-size needs a size in bytes from 1 to"),
            (["--http-api-max-payload-size", "1G"], "--http-api-max-payload-size needs"),
            (["--start-time-us", "-1"], "--start-time-us needs a whole number of microseconds"),
            (["--seccomp-filter", "/f.bpf"], "--seccomp-filter is not supported"),
            (["--metadata", "/m.json"], "--metadata is not supported: Swiftlet has no MMDS"),
            (["--enable-pci"], "--enable-pci is not supported"),
            (["--describe-snapshot", "/s"], "--describe-snapshot is not supported: Swiftlet has no snapshots"),
            (["--kernel", "/k"], "unknown option --kernel (Firecracker's command line"),
            (["stray"], "unexpected argument stray"),
            (["--config-file"], "--config-file needs a value"),
            (["--log-path", ""], "--log-path needs a non-empty value"),
        ]
        for (arguments, expected) in cases {
            let message = refusal(arguments, dialect: .firecracker)
            XCTAssertTrue(message.contains(expected), "\(arguments): '\(message)' lacks '\(expected)'")
        }
    }

    /// `swiftlet run` takes Firecracker's flags too, with Swiftlet's defaults.
    func testSwiftletRunTakesFirecrackersFlags() throws {
        let config = try parseRun(["--config-file", "/vm.json", "--api-sock", "/s", "--id", "vm-7", "--no-reboot", "--stats"])
        XCTAssertEqual(config.configFilePath, "/vm.json")
        XCTAssertEqual(config.apiSocketPath, "/s")
        XCTAssertEqual(config.instanceID, "vm-7")
        XCTAssertEqual(config.memoryMiB, 256, "Swiftlet's default")
        XCTAssertNil(try parseRun(["--config-file", "/vm.json"]).apiSocketPath, "no default socket in swiftlet run")
        XCTAssertNil(try parseRun(["--config-file", "/vm.json"]).instanceID)
        XCTAssertNil(try parseRun(["--config-file", "/vm.json", "--no-api"]).apiSocketPath)
        XCTAssertTrue(refusal(["--config-file", "/vm.json", "--memory", "1G"], dialect: .swiftlet)
            .contains("--memory cannot be combined with --config-file: the config file describes the VM"))
        XCTAssertTrue(refusal(["--disk", "path=/d", "--config-file", "/vm.json"], dialect: .swiftlet).contains("--disk cannot be combined"))
        XCTAssertTrue(refusal([], dialect: .swiftlet).contains("--kernel PATH is required, or --config-file PATH"))
    }
}
