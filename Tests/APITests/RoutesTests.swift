import XCTest
@testable import API
import SwiftletCore

func httpRequest(_ method: String, _ target: String, _ body: String? = nil) -> String {
    guard let body else { return "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n\r\n" }
    return "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

/// Parses one request and routes it.
func route(_ text: String, state: InstanceState = .notStarted) -> Result<APIAction, APIError> {
    var parser = HTTPRequestParser()
    parser.feed(Array(text.utf8))
    switch parser.next() {
    case .request(let request):
        do { return .success(try APIRouter.route(request, state: state)) } catch { return .failure(error) }
    case .error(let error): return .failure(error)
    case .needMore, .sendContinue: return .failure(APIError(status: 0, message: "incomplete"))
    }
}

final class RoutesTests: XCTestCase {
    func action(_ text: String, state: InstanceState = .notStarted, file: StaticString = #filePath, line: UInt = #line) -> APIAction? {
        switch route(text, state: state) {
        case .success(let action): return action
        case .failure(let error):
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    func fault(_ text: String, state: InstanceState = .notStarted, file: StaticString = #filePath, line: UInt = #line) -> APIError? {
        switch route(text, state: state) {
        case .success(let action):
            XCTFail("unexpectedly routed to \(action)", file: file, line: line)
            return nil
        case .failure(let error): return error
        }
    }

    func testBootSource() {
        XCTAssertEqual(action(httpRequest("PUT", "/boot-source", #"{"kernel_image_path": "/boot/vmlinux"}"#)),
                       .configureBootSource(BootSourceConfig(kernelImagePath: "/boot/vmlinux")))
        XCTAssertEqual(action(httpRequest("PUT", "/boot-source",
                                          #"{"boot_args": "console=ttyS0 reboot=k", "initrd_path": "/i.cpio", "kernel_image_path": "/k"}"#)),
                       .configureBootSource(BootSourceConfig(kernelImagePath: "/k", initrdPath: "/i.cpio", bootArgs: "console=ttyS0 reboot=k")))
        XCTAssertEqual(action(httpRequest("PUT", "/boot-source", #"{"kernel_image_path": "/k", "initrd_path": null, "boot_args": ""}"#)),
                       .configureBootSource(BootSourceConfig(kernelImagePath: "/k", initrdPath: nil, bootArgs: "")))
        XCTAssertEqual(fault(httpRequest("PUT", "/boot-source", #"{"initrd_path": "/i"}"#))?.message,
                       "missing required field \"kernel_image_path\"")
        XCTAssertEqual(fault(httpRequest("PUT", "/boot-source", #"{"kernel_image_path": ""}"#))?.message,
                       "kernel_image_path must not be empty")
        XCTAssertEqual(fault(httpRequest("PUT", "/boot-source", #"{"kernel_image_path": 5}"#))?.message,
                       "kernel_image_path must be a string, got an integer")
        XCTAssertEqual(fault(httpRequest("PUT", "/boot-source", #"{"kernel_image_path": "/k", "extra": 1}"#))?.message,
                       "unknown field \"extra\" in boot-source")
        XCTAssertEqual(fault(httpRequest("PUT", "/boot-source", #"{"kernel_image_path": "/k\u0000x"}"#))?.status, 400)
    }

    func testMachineConfig() {
        XCTAssertEqual(action(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 2, "mem_size_mib": 1024}"#)),
                       .configureMachine(MachineConfig(vcpuCount: 2, memSizeMiB: 1024)))
        XCTAssertEqual(action(httpRequest("PUT", "/machine-config",
                                          #"{"mem_size_mib": 2, "vcpu_count": \#(VMConfig.maxCPUs), "smt": false, "track_dirty_pages": true}"#)),
                       .configureMachine(MachineConfig(vcpuCount: VMConfig.maxCPUs, memSizeMiB: 2, trackDirtyPages: true)))
        XCTAssertEqual(action(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 1048576}"#)),
                       .configureMachine(MachineConfig(vcpuCount: 1, memSizeMiB: 1 << 20)))
        XCTAssertEqual(fault(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 0, "mem_size_mib": 128}"#))?.message,
                       "vcpu_count must be between 1 and \(VMConfig.maxCPUs), got 0")
        XCTAssertEqual(fault(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 1048577}"#))?.message,
                       "mem_size_mib must be between \(VMConfig.minMemoryMiB) and 1048576, got 1048577")
        XCTAssertEqual(fault(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1}"#))?.message,
                       "missing required field \"mem_size_mib\"")
        XCTAssertEqual(fault(httpRequest("PUT", "/machine-config", #"{"mem_size_mib": 64}"#))?.message,
                       "missing required field \"vcpu_count\"")
        XCTAssertEqual(fault(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64, "smt": true}"#))?.status, 400)
        // Firecracker's huge_pages: "None" (the default) or "2M" (hugetlbfs).
        XCTAssertEqual(action(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64, "huge_pages": "2M"}"#)),
                       .configureMachine(MachineConfig(vcpuCount: 1, memSizeMiB: 64, hugePages: .twoMiB)))
        XCTAssertEqual(action(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64, "huge_pages": "None"}"#)),
                       .configureMachine(MachineConfig(vcpuCount: 1, memSizeMiB: 64)))
        XCTAssertEqual(fault(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64, "huge_pages": "1G"}"#))?.message,
                       "huge_pages must be \"None\" or \"2M\", got \"1G\"")
        XCTAssertEqual(fault(httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1.0, "mem_size_mib": 64}"#))?.message,
                       "invalid JSON at byte 15: numbers must be integers; fractions are not supported")
    }

    func testApplyToConfig() {
        var config = VMConfig()
        BootSourceConfig(kernelImagePath: "/k", initrdPath: "/i", bootArgs: "a=b").apply(to: &config)
        MachineConfig(vcpuCount: 4, memSizeMiB: 2048).apply(to: &config)
        XCTAssertEqual(config.kernelPath, "/k")
        XCTAssertEqual(config.initrdPath, "/i")
        XCTAssertEqual(config.cmdline, "a=b")
        XCTAssertEqual(config.cpus, 4)
        XCTAssertEqual(config.memoryMiB, 2048)
        XCTAssertNoThrow(try config.validate())
        BootSourceConfig(kernelImagePath: "/k2").apply(to: &config)
        XCTAssertNil(config.initrdPath)
        XCTAssertNil(config.cmdline)
    }

    func testActionsAndLifecycle() {
        let start = httpRequest("PUT", "/actions", #"{"action_type": "InstanceStart"}"#)
        let ctrlAltDel = httpRequest("PUT", "/actions", #"{"action_type": "SendCtrlAltDel"}"#)
        let pause = httpRequest("PATCH", "/vm", #"{"state": "Paused"}"#)
        let resume = httpRequest("PATCH", "/vm", #"{"state": "Resumed"}"#)
        let boot = httpRequest("PUT", "/boot-source", #"{"kernel_image_path": "/k"}"#)
        let machine = httpRequest("PUT", "/machine-config", #"{"vcpu_count": 1, "mem_size_mib": 64}"#)

        XCTAssertEqual(action(start), .start)
        XCTAssertEqual(fault(start, state: .running)?.message, "InstanceStart is not supported after the VM has started")
        XCTAssertEqual(fault(start, state: .paused)?.status, 400)
        XCTAssertEqual(fault(ctrlAltDel)?.status, 400)
        XCTAssertEqual(action(ctrlAltDel, state: .running), .sendCtrlAltDel)
        XCTAssertEqual(action(ctrlAltDel, state: .paused), .sendCtrlAltDel)
        XCTAssertEqual(fault(pause)?.status, 400)
        XCTAssertEqual(action(pause, state: .running), .pause)
        XCTAssertEqual(action(pause, state: .paused), .pause)
        XCTAssertEqual(action(resume, state: .paused), .resume)
        for state in [InstanceState.running, .paused] {
            XCTAssertEqual(fault(boot, state: state)?.message, "configuring the boot source is not supported after the VM has started")
            XCTAssertEqual(fault(machine, state: state)?.message, "configuring the machine is not supported after the VM has started")
        }
        XCTAssertEqual(fault(httpRequest("PUT", "/actions", #"{"action_type": "Shutdown"}"#), state: .running)?.message,
                       "unknown action_type \"Shutdown\"; expected InstanceStart, SendCtrlAltDel or FlushMetrics")
        XCTAssertEqual(fault(httpRequest("PATCH", "/vm", #"{"state": "Running"}"#), state: .running)?.status, 400)
    }

    func testGetsWorkInEveryState() {
        for state in [InstanceState.notStarted, .running, .paused] {
            XCTAssertEqual(action(httpRequest("GET", "/"), state: state), .describeInstance)
            XCTAssertEqual(action(httpRequest("GET", "/vm/config"), state: state), .describeConfig)
            XCTAssertEqual(action(httpRequest("GET", "/vm/config?pretty"), state: state), .describeConfig)
        }
    }

    func testNotFoundAndMethodNotAllowed() {
        XCTAssertEqual(fault(httpRequest("GET", "/nope"))?.status, 404)
        XCTAssertEqual(fault(httpRequest("GET", "/boot-source/"))?.status, 404)
        XCTAssertEqual(fault(httpRequest("GET", "/VM"))?.status, 404)
        let error = fault(httpRequest("GET", "/boot-source"))
        XCTAssertEqual(error?.status, 405)
        XCTAssertEqual(error?.allow, "PUT")
        XCTAssertEqual(error?.response().header("Allow"), "PUT")
        XCTAssertEqual(fault(httpRequest("PUT", "/vm", "{}"))?.allow, "PATCH")
        XCTAssertEqual(fault(httpRequest("DELETE", "/"))?.allow, "GET")
        XCTAssertEqual(fault(httpRequest("PUT", "/vm/config", "{}"))?.allow, "GET")
        XCTAssertEqual(fault(httpRequest("get", "/"))?.status, 405)
    }

    func testInstanceInfoJSON() {
        XCTAssertEqual(APIRouter.instanceInfo(id: "anonymous-instance", state: .notStarted, vmmVersion: "0.1.0").serialized(),
                       #"{"id":"anonymous-instance","state":"Not started","vmm_version":"0.1.0","app_name":"swiftlet"}"#)
        XCTAssertEqual(APIRouter.instanceInfo(id: "a", state: .running, vmmVersion: "1")["state"], .string("Running"))
        XCTAssertEqual(APIRouter.instanceInfo(id: "a", state: .paused, vmmVersion: "1")["state"], .string("Paused"))
    }

    func testVMConfigJSON() throws {
        var config = VMConfig()
        XCTAssertEqual(APIRouter.vmConfig(config).serialized(),
                       #"{"boot-source":{},"machine-config":{"vcpu_count":1,"mem_size_mib":256,"smt":false,"track_dirty_pages":false,"huge_pages":"None"},"drives":[],"network-interfaces":[],"vsock":null,"entropy":null}"#)
        config.kernelPath = "/boot/Image"
        config.initrdPath = "/boot/initrd"
        config.cmdline = "console=ttyAMA0 \"quoted\""
        config.cpus = 4
        config.memoryMiB = 1024
        let json = APIRouter.vmConfig(config)
        XCTAssertEqual(json.serialized(),
                       #"{"boot-source":{"kernel_image_path":"/boot/Image","initrd_path":"/boot/initrd","boot_args":"console=ttyAMA0 \"quoted\""},"machine-config":{"vcpu_count":4,"mem_size_mib":1024,"smt":false,"track_dirty_pages":false,"huge_pages":"None"},"drives":[],"network-interfaces":[],"vsock":null,"entropy":null}"#)
        // What GET /vm/config returns can be PUT back.
        let bootBody = try XCTUnwrap(json["boot-source"]).serialized()
        let machineBody = try XCTUnwrap(json["machine-config"]).serialized()
        var rebuilt = VMConfig()
        if case .configureBootSource(let b) = action(httpRequest("PUT", "/boot-source", bootBody)) { b.apply(to: &rebuilt) } else { XCTFail() }
        if case .configureMachine(let m) = action(httpRequest("PUT", "/machine-config", machineBody)) { m.apply(to: &rebuilt) } else { XCTFail() }
        XCTAssertEqual(rebuilt, config)
    }

    func testFaultBodyIsFirecrackerShaped() throws {
        let error = try XCTUnwrap(fault(httpRequest("PUT", "/actions", "[]")))
        XCTAssertEqual(error.status, 400)
        let response = error.response()
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(response.header("content-type"), "application/json")
        XCTAssertEqual(try JSONValue.parse(response.body), .object([("fault_message", .string("the request body must be a JSON object, got an array"))]))
    }
}
