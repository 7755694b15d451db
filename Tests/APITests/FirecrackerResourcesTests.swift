import XCTest
@testable import API
import SwiftletCore

/// The resources Firecracker's clients use beyond boot-source and drives: GET and PATCH
/// /machine-config, /logger, /metrics, FlushMetrics, GET /version, GET /.
final class FirecrackerResourcesTests: XCTestCase {
    func routed(_ text: String, state: InstanceState = .notStarted, file: StaticString = #filePath, line: UInt = #line) -> APIAction? {
        switch route(text, state: state) {
        case .success(let action): return action
        case .failure(let error):
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    func refused(_ text: String, state: InstanceState = .notStarted, file: StaticString = #filePath, line: UInt = #line) -> APIError? {
        switch route(text, state: state) {
        case .success(let action):
            XCTFail("unexpectedly routed to \(action)", file: file, line: line)
            return nil
        case .failure(let error): return error
        }
    }

    /// The Go SDK polls GET /machine-config until it answers 200, before configuring anything.
    func testGetMachineConfigAnswersDefaultsInEveryState() {
        for state in [InstanceState.notStarted, .running, .paused] {
            XCTAssertEqual(routed(httpRequest("GET", "/machine-config"), state: state), .describeMachine)
        }
        XCTAssertEqual(APIRouter.machineConfig(VMConfig()).serialized(),
                       #"{"vcpu_count":1,"mem_size_mib":256,"smt":false,"track_dirty_pages":false,"huge_pages":"None"}"#)
        var config = VMConfig()
        config.cpus = 2
        config.memoryMiB = 1024
        config.hugePages = .twoMiB
        config.trackDirtyPages = true
        XCTAssertEqual(APIRouter.machineConfig(config).serialized(),
                       #"{"vcpu_count":2,"mem_size_mib":1024,"smt":false,"track_dirty_pages":true,"huge_pages":"2M"}"#)
        XCTAssertEqual(APIRouter.vmConfig(config)["machine-config"], APIRouter.machineConfig(config), "one shape in both answers")
    }

    func testPutMachineConfigResetsWhatItLeavesOut() throws {
        var config = VMConfig()
        config.hugePages = .twoMiB
        config.trackDirtyPages = true
        let put = try XCTUnwrap(routed(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 512}"#)))
        XCTAssertTrue(try put.configure(&config))
        XCTAssertEqual(config.cpus, 2)
        XCTAssertEqual(config.memoryMiB, 512)
        XCTAssertEqual(config.hugePages, .none, "Firecracker's PUT sets what it leaves out to the defaults")
        XCTAssertFalse(config.trackDirtyPages)
        XCTAssertEqual(routed(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64, "cpu_template": "None"}"#)),
                       .configureMachine(MachineConfig(vcpuCount: 1, memSizeMiB: 64)))
        XCTAssertEqual(routed(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64, "cpu_template": null}"#)),
                       .configureMachine(MachineConfig(vcpuCount: 1, memSizeMiB: 64)))
        XCTAssertEqual(refused(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64, "cpu_template": "T2"}"#))?.message,
                       "cpu_template: Swiftlet has no CPU templates; set it to \"None\" or leave it out")
    }

    func testPatchMachineConfigChangesOnlyWhatItNames() throws {
        var config = VMConfig()
        config.cpus = 4
        config.hugePages = .twoMiB
        let patch = try XCTUnwrap(routed(httpRequest("PATCH", "/machine-config", #"{"mem_size_mib": 1024}"#)))
        XCTAssertEqual(patch, .updateMachine(MachineConfigUpdate(memSizeMiB: 1024)))
        XCTAssertTrue(try patch.configure(&config))
        XCTAssertEqual(config.cpus, 4)
        XCTAssertEqual(config.memoryMiB, 1024)
        XCTAssertEqual(config.hugePages, .twoMiB)
        XCTAssertEqual(routed(httpRequest("PATCH", "/machine-config", #"{"vcpu_count": 3, "track_dirty_pages": true, "huge_pages": "None", "smt": false}"#)),
                       .updateMachine(MachineConfigUpdate(vcpuCount: 3, hugePages: HugePages.none, trackDirtyPages: true)))
        XCTAssertEqual(refused(httpRequest("PATCH", "/machine-config", "{}"))?.message, "the PATCH names no machine-config field to change")
        XCTAssertEqual(refused(httpRequest("PATCH", "/machine-config", #"{"vcpu_count": 0}"#))?.status, 400)
        XCTAssertEqual(refused(httpRequest("PATCH", "/machine-config", #"{"memory": 5}"#))?.message, "unknown field \"memory\" in machine-config")
        XCTAssertEqual(refused(httpRequest("PATCH", "/machine-config", #"{"mem_size_mib": "5"}"#))?.message, "mem_size_mib must be an integer, got a string")
        for state in [InstanceState.running, .paused] {
            XCTAssertEqual(refused(httpRequest("PATCH", "/machine-config", #"{"vcpu_count": 2}"#), state: state)?.message,
                           "changing the machine configuration is not supported after the VM has started")
        }
    }

    func testSMTIsRefusedWithFirecrackersMessage() {
        for method in ["PUT", "PATCH"] {
            let error = refused(httpRequest(method, "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 64, "smt": true}"#))
            XCTAssertEqual(error?.status, 400)
            XCTAssertEqual(error?.message, APIRouter.smtRefusal)
        }
        #if arch(arm64)
        XCTAssertEqual(APIRouter.smtRefusal, "Machine config error: Enabling simultaneous multithreading is not supported on aarch64.")
        #else
        XCTAssertTrue(APIRouter.smtRefusal.hasPrefix("Machine config error: Enabling simultaneous multithreading is not supported"))
        #endif
    }

    func testLogger() {
        XCTAssertEqual(routed(httpRequest("PUT", "/logger", #"{"log_path": "/tmp/log.fifo", "level": "Warning", "show_level": true, "show_log_origin": false}"#)),
                       .configureLogger(LoggerConfig(logPath: "/tmp/log.fifo", level: .warning, showLevel: true, showLogOrigin: false)))
        XCTAssertEqual(routed(httpRequest("PUT", "/logger", #"{"level": "debug", "module": "api_server"}"#)),
                       .configureLogger(LoggerConfig(level: .debug, module: "api_server")))
        XCTAssertEqual(routed(httpRequest("PUT", "/logger", #"{"level": "WARN", "log_path": null}"#)), .configureLogger(LoggerConfig(level: .warning)))
        XCTAssertEqual(routed(httpRequest("PUT", "/logger", "{}")), .configureLogger(LoggerConfig()))
        XCTAssertEqual(refused(httpRequest("PUT", "/logger", #"{"level": "Loud"}"#))?.message,
                       "level must be Error, Warning, Info, Debug, Trace or Off, got \"Loud\"")
        XCTAssertEqual(refused(httpRequest("PUT", "/logger", #"{"log_path": ""}"#))?.message, "log_path must not be empty")
        XCTAssertEqual(refused(httpRequest("PUT", "/logger", #"{"show_level": "yes"}"#))?.message, "show_level must be a boolean, got a string")
        XCTAssertEqual(refused(httpRequest("PUT", "/logger", #"{"options": []}"#))?.message, "unknown field \"options\" in logger")
        XCTAssertEqual(refused(httpRequest("PUT", "/logger", "{}"), state: .running)?.message, "configuring the logger is not supported after the VM has started")
        XCTAssertEqual(refused(httpRequest("GET", "/logger"))?.allow, "PUT")
    }

    func testLoggerUpdatesAreFirecrackers() throws {
        var config = VMConfig()
        XCTAssertTrue(try APIAction.configureLogger(LoggerConfig(logPath: "/a", level: .debug, showLevel: true)).configure(&config))
        XCTAssertTrue(try APIAction.configureLogger(LoggerConfig(showLogOrigin: true)).configure(&config))
        XCTAssertEqual(config.logger, LoggerConfig(logPath: "/a", level: nil, showLevel: true, showLogOrigin: true),
                       "named fields replace, the rest stay, and a level left out is the default again")
    }

    func testMetricsAreConfiguredOnce() throws {
        XCTAssertEqual(routed(httpRequest("PUT", "/metrics", #"{"metrics_path": "/tmp/metrics.fifo"}"#)),
                       .configureMetrics(MetricsConfig(path: "/tmp/metrics.fifo")))
        XCTAssertEqual(routed(httpRequest("PUT", "/metrics", #"{"metrics_path": "/m", "emit_id": true, "properties": {"team": "a", "zone": "b"}}"#)),
                       .configureMetrics(MetricsConfig(path: "/m", emitID: true, properties: ["team": "a", "zone": "b"])))
        XCTAssertEqual(refused(httpRequest("PUT", "/metrics", "{}"))?.message, "missing required field \"metrics_path\"")
        XCTAssertEqual(refused(httpRequest("PUT", "/metrics", #"{"metrics_path": "/m", "properties": {"a": 1}}"#))?.message,
                       "properties.a must be a string, got an integer")
        XCTAssertEqual(refused(httpRequest("PUT", "/metrics", #"{"metrics_path": "/m", "properties": []}"#))?.message,
                       "properties must be a JSON object, got an array")
        XCTAssertEqual(refused(httpRequest("PUT", "/metrics", #"{"metrics_path": "/m"}"#), state: .paused)?.status, 400)
        var config = VMConfig()
        XCTAssertTrue(try APIAction.configureMetrics(MetricsConfig(path: "/m")).configure(&config))
        XCTAssertThrowsError(try APIAction.configureMetrics(MetricsConfig(path: "/n")).configure(&config)) { error in
            XCTAssertEqual((error as? APIError)?.status, 400)
        }
        XCTAssertEqual(config.metrics?.path, "/m", "the first stays")
    }

    /// Firecracker refuses FlushMetrics before start (nothing to report) and takes it after.
    func testFlushMetrics() {
        let flush = httpRequest("PUT", "/actions", #"{"action_type": "FlushMetrics"}"#)
        XCTAssertEqual(refused(flush)?.message, "FlushMetrics is not supported before the VM is started")
        XCTAssertEqual(routed(flush, state: .running), .flushMetrics)
        XCTAssertEqual(routed(flush, state: .paused), .flushMetrics)
        XCTAssertEqual(refused(httpRequest("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#))?.message,
                       "SendCtrlAltDel is not supported before the VM is started")
        var config = VMConfig()
        XCTAssertFalse(try APIAction.flushMetrics.configure(&config), "not a configuration")
    }

    func testVersionAndInstanceInfo() {
        for state in [InstanceState.notStarted, .running, .paused] {
            XCTAssertEqual(routed(httpRequest("GET", "/version"), state: state), .describeVersion)
        }
        XCTAssertEqual(APIRouter.version().serialized(), #"{"firecracker_version":"\#(APIRouter.firecrackerVersion)"}"#)
        XCTAssertEqual(APIRouter.instanceInfo(id: "vm-1", state: .running).serialized(),
                       #"{"id":"vm-1","state":"Running","vmm_version":"\#(APIRouter.firecrackerVersion)","app_name":"swiftlet"}"#)
        // Kata Containers requires at least 0.21.1 and reads the version as semver.
        let parts = APIRouter.firecrackerVersion.split(separator: ".").compactMap { Int($0) }
        XCTAssertEqual(parts.count, 3)
        XCTAssertGreaterThanOrEqual(parts[0], 1)
        XCTAssertEqual(refused(httpRequest("PUT", "/version", "{}"))?.allow, "GET")
    }

    func testMethodNotAllowedListsEveryMethod() {
        let error = refused(httpRequest("DELETE", "/machine-config"))
        XCTAssertEqual(error?.status, 405)
        XCTAssertEqual(error?.allow, "GET, PUT, PATCH")
        XCTAssertEqual(error?.message, "DELETE is not allowed on /machine-config; use GET, PUT or PATCH")
    }

    /// --http-api-max-payload-size reaches the parser and the JSON reader both.
    func testPayloadLimitIsTheServers() {
        let body = #"{"kernel_image_path": "/k", "boot_args": ""# + String(repeating: "a", count: 100_000) + #""}"#
        var small = HTTPRequestParser()
        small.feed(Array(httpRequest("PUT", "/boot-source", body).utf8))
        guard case .error(let error) = small.next() else { return XCTFail("accepted over the default limit") }
        XCTAssertEqual(error.status, 413)
        var large = HTTPRequestParser(maxBodyBytes: 200_000)
        large.feed(Array(httpRequest("PUT", "/boot-source", body).utf8))
        guard case .request(let request) = large.next() else { return XCTFail("refused within the limit") }
        XCTAssertEqual(try? APIRouter.route(request, state: .notStarted),
                       .configureBootSource(BootSourceConfig(kernelImagePath: "/k", bootArgs: String(repeating: "a", count: 100_000))))
    }
}
