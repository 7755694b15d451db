import CLinux
import KVM
import SwiftletCore

/// A built VM: KVM VM fd, guest memory, the two buses and the vCPUs, ready to run.
/// `run()` starts one thread per vCPU and returns when the guest or the user stops it.
public final class VM {
    public let kvm: KVMVM
    public let memory: GuestMemory
    public let mmioBus: Bus
    public let pioBus: Bus
    public let vcpus: [KVMVCPU]
    public let control: VMControl
    /// Where host console input goes, and the eventfd it uses to say it has room again.
    public var consoleInput: (any ConsoleInput)?
    public var consoleSpace: SpaceNotifier?
    /// The machine's graceful-shutdown button, pressed on SIGTERM (and by the API).
    public var powerButton: (any PowerButton)?
    /// Bytes of kvm_run past which port-I/O data cannot lie (guards a bogus io.count).
    let kvmRunDataLimit: Int

    /// The signal that kicks a vCPU thread out of KVM_RUN.
    public static let kickSignal: Int32 = SIGUSR1

    public init(kvm: KVMVM, memory: GuestMemory, mmioBus: Bus, pioBus: Bus, vcpus: [KVMVCPU]) throws(SwiftletError) {
        self.kvm = kvm
        self.memory = memory
        self.mmioBus = mmioBus
        self.pioBus = pioBus
        self.vcpus = vcpus
        self.control = try VMControl()
        self.kvmRunDataLimit = kvm.system.vcpuMmapSize
    }

    /// Runs every vCPU on its own thread until a stop is requested, then stops them all
    /// and returns the first reason given.
    public func run() throws(SwiftletError) -> VMExit {
        guard sl_install_kick_handler(VM.kickSignal) == 0 else { throw .lastSystemError("sigaction") }
        EventLoop.blockSignals()
        let loop = try EventLoop(vm: self)
        if consoleInput != nil { Terminal.enterRawMode() }
        defer { Terminal.restore() }
        var threads: [Thread] = []
        for vcpu in vcpus {
            let runner = VCPURunner(vcpu: vcpu, vm: self)
            do {
                threads.append(try Thread.spawn { runner.loop() })
            } catch {
                control.requestStop(.failure("cannot start vCPU \(vcpu.id) thread: \(error)"))
                break
            }
        }
        loop.run()
        stop(threads)
        return control.exit ?? .stopped
    }

    /// Keeps an object alive as long as the VM (an in-kernel device's fd, for one).
    public func retain(_ object: AnyObject) { keptAlive.append(object) }
    private var keptAlive: [AnyObject] = []

    /// Asks the VM to stop from outside the vCPU threads (signals, API).
    public func requestStop(_ exit: VMExit) { control.requestStop(exit) }

    private func stop(_ threads: [Thread]) {
        // immediate_exit first, so a vCPU about to enter KVM_RUN leaves at once; the
        // signal interrupts one already inside.
        for (vcpu, thread) in zip(vcpus, threads) {
            vcpu.setImmediateExit(true)
            thread.signal(VM.kickSignal)
        }
        for thread in threads { thread.join() }
    }
}
