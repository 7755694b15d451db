import API
import KVM
import SwiftletCore
import VMM
#if arch(arm64)
import ARM64
#elseif arch(x86_64)
import X86_64
#endif

/// Owns the VM's configuration and lifecycle for the control API: configure before start,
/// build and start the host machine on InstanceStart, pause, resume, power button.
final class Controller {
    private(set) var config: VMConfig
    private let system: KVMSystem
    private let loop: MainLoop
    private(set) var vm: VM?
    private let id: String

    init(config: VMConfig, system: KVMSystem, loop: MainLoop, id: String) {
        self.config = config
        self.system = system
        self.loop = loop
        self.id = id
    }

    var state: InstanceState {
        guard let vm else { return .notStarted }
        return vm.isPaused ? .paused : .running
    }

    func start() throws(SwiftletError) {
        let vm = try HostMachine.build(config, system: system, console: ConsoleOutput(fd: 1))
        self.vm = vm
        try loop.start(vm)
    }

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        do {
            return try perform(try APIRouter.route(request, state: state))
        } catch {
            return error.response()
        }
    }

    private func perform(_ action: APIAction) throws(APIError) -> HTTPResponse {
        switch action {
        case .describeInstance:
            return .json(APIRouter.instanceInfo(id: id, state: state, vmmVersion: swiftletVersion))
        case .describeConfig:
            return .json(APIRouter.vmConfig(config))
        case .configureBootSource(let boot):
            var updated = config
            boot.apply(to: &updated)
            config = updated
            return .noContent()
        case .configureMachine(let machine):
            var updated = config
            machine.apply(to: &updated)
            do { try updated.validate() } catch { throw .badRequest("\(error)") }
            config = updated
            return .noContent()
        case .start:
            guard config.kernelPath != nil else { throw .badRequest("no boot source: PUT /boot-source with a kernel_image_path first") }
            do { try start() } catch { throw .badRequest("cannot start the VM: \(error)") }
            return .noContent()
        case .sendCtrlAltDel:
            guard loop.pressPowerButton() else { throw .badRequest("this machine has no power button") }
            return .noContent()
        case .pause:
            do { try vm?.pause() } catch { throw APIError(status: 500, message: "\(error)") }
            return .noContent()
        case .resume:
            vm?.resume()
            return .noContent()
        }
    }
}
