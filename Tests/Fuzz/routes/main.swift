import API
import FuzzKit
import SwiftletCore

// APIRouter.route on requests built from fuzz bytes, in each instance state. An action
// must respect the API's ranges, an error must be a 4xx the server can serialize, and the
// JSON the API answers with (GET /, GET /vm/config, faults) must parse back.
//
// Input: byte 0 = state (% 3: not started, running, paused); byte 1 = method, byte 2 =
// path: below 0xF0 one of the known ones (% count), else a length byte and raw bytes;
// the rest is the body.

let methods = ["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "get", "OPTIONS"]
let paths = ["/", "/vm/config", "/boot-source", "/machine-config", "/actions", "/vm",
             "/vm?x=1", "/actions?", "/boot-source/", "//", "/vm/", "/machine-config?vcpu_count=2",
             "/snapshot/create", "/mmds", "/?", "/VM",
             "/drives/rootfs", "/drives/data_1", "/drives/", "/drives/a/b", "/drives/rootfs?x=1", "/entropy", "/entropy/",
             "/version", "/logger", "/metrics", "/network-interfaces/eth0", "/vsock"]
let states: [InstanceState] = [.notStarted, .running, .paused]

func pick(_ input: inout FuzzInput, _ known: [String]) -> String {
    let selector = input.byte()
    if selector < 0xF0 { return known[Int(selector) % known.count] }
    return String(decoding: input.shortBytes(), as: UTF8.self)
}

func requireJSON(_ bytes: [UInt8], _ what: String) {
    let parsed: JSONValue
    do {
        parsed = try JSONParser.parse(bytes)
    } catch {
        fatalError("\(what) is not JSON the API parses: \(error): \(String(decoding: bytes, as: UTF8.self))")
    }
    require(parsed.serializedBytes() == bytes, "\(what) changed in a round trip")
}

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    let state = states[Int(input.byte()) % states.count]
    let method = pick(&input, methods)
    let target = pick(&input, paths)
    let body = input.rest()
    let request = HTTPRequest(method: method, target: target, headers: [HTTPHeader(name: "Host", value: "localhost")],
                              body: body)
    var config = VMConfig()
    do throws(APIError) {
        let action = try APIRouter.route(request, state: state)
        _ = action.description
        switch action {
        case .configureBootSource(let boot):
            require(!boot.kernelImagePath.isEmpty && !boot.kernelImagePath.utf8.contains(0), "bad kernel path accepted")
            require(!(boot.initrdPath?.utf8.contains(0) ?? false) && !(boot.bootArgs?.utf8.contains(0) ?? false),
                    "NUL accepted in a boot-source string")
            require(state == .notStarted, "boot source configured in state \(state)")
            boot.apply(to: &config)
        case .configureMachine(let machine):
            require(machine.vcpuCount >= 1 && machine.vcpuCount <= VMConfig.maxCPUs, "vcpu_count \(machine.vcpuCount) accepted")
            require(machine.memSizeMiB >= VMConfig.minMemoryMiB && machine.memSizeMiB <= APIRouter.maxMemoryMiB,
                    "mem_size_mib \(machine.memSizeMiB) accepted")
            require(state == .notStarted, "machine configured in state \(state)")
            machine.apply(to: &config)
            do { try config.validate() } catch { fatalError("accepted machine config fails validation: \(error)") }
        case .configureDrive(let disk):
            require(state == .notStarted, "drive configured in state \(state)")
            require(!disk.path.isEmpty && !disk.path.utf8.contains(0), "bad path_on_host accepted")
            require(!disk.id.isEmpty && disk.id.utf8.count <= VMConfig.maxDriveIDLength, "bad drive_id accepted")
            require(request.path == "/drives/" + disk.id, "drive_id \(disk.id) accepted on \(target)")
            config.setDisk(disk)
        case .updateDrive(let id, let path, let limiter):
            require(state != .notStarted, "drive update accepted before start")
            require(path != nil || limiter != nil, "empty drive update accepted")
            require(path.map { !$0.isEmpty && !$0.utf8.contains(0) } ?? true && request.path == "/drives/" + id, "bad media change accepted")
        case .configureEntropy(let limiter):
            require(state == .notStarted, "entropy configured in state \(state)")
            config.entropy = true
            config.entropyRateLimiter = limiter
        case .configureNetworkInterface(let interface):
            require(state == .notStarted, "network interface configured in state \(state)")
            require(request.path == "/network-interfaces/" + interface.id, "iface_id \(interface.id) accepted on \(target)")
            require(interface.mac.map { $0.isValidUnicast } ?? true, "bad guest_mac accepted")
            config.setNetworkInterface(interface)
        case .configureVsock(let vsock):
            require(state == .notStarted, "vsock configured in state \(state)")
            require(vsock.guestCID >= 3 && vsock.guestCID <= UInt64(UInt32.max) - 1 && !vsock.udsPath.isEmpty, "bad vsock accepted")
            config.vsock = vsock
        case .updateNetworkInterface(let id, _, _):
            require(state != .notStarted, "network interface update accepted before start")
            require(request.path == "/network-interfaces/" + id, "iface_id \(id) accepted on \(target)")
        case .updateMachine(let update):
            require(state == .notStarted, "machine configuration changed in state \(state)")
            require(update.vcpuCount.map { $0 >= 1 && $0 <= VMConfig.maxCPUs } ?? true, "vcpu_count accepted out of range")
            update.apply(to: &config)
        case .configureLogger(let logger):
            require(state == .notStarted, "logger configured in state \(state)")
            require(!(logger.logPath?.isEmpty ?? false) && !(logger.logPath?.utf8.contains(0) ?? false), "bad log_path accepted")
            do { _ = try action.configure(&config) } catch { fatalError("logger configuration refused: \(error)") }
        case .configureMetrics(let metrics):
            require(state == .notStarted, "metrics configured in state \(state)")
            require(!metrics.path.isEmpty && !metrics.path.utf8.contains(0), "bad metrics_path accepted")
            do { _ = try action.configure(&config) } catch { fatalError("first metrics configuration refused: \(error)") }
            do throws(APIError) {
                _ = try action.configure(&config)
                fatalError("metrics configured twice")
            } catch {
                require(error.status == 400, "second metrics configuration: \(error)")
            }
        case .start:
            require(state == .notStarted, "InstanceStart accepted in state \(state)")
        case .sendCtrlAltDel, .flushMetrics, .pause, .resume:
            require(state != .notStarted, "\(action) accepted before start")
        case .describeInstance, .describeVersion, .describeMachine, .describeConfig:
            require(method == "GET", "\(method) routed to \(action)")
        }
        requireJSON(APIRouter.vmConfig(config).serializedBytes(), "GET /vm/config")
        requireJSON(APIRouter.machineConfig(config).serializedBytes(), "GET /machine-config")
        requireJSON(APIRouter.version().serializedBytes(), "GET /version")
        requireJSON(APIRouter.instanceInfo(id: String(decoding: body.prefix(16), as: UTF8.self), state: state,
                                           vmmVersion: "0.0.0").serializedBytes(), "GET /")
    } catch {
        require([400, 404, 405].contains(error.status), "route failed with status \(error.status): \(error.message)")
        require(error.status != 405 || error.allow != nil, "405 without Allow")
        let response = error.response()
        requireJSON(response.body, "fault body")
        _ = response.serialize(keepAlive: true)
        _ = error.description
    }
}
