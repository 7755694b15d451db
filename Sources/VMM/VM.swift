import CLinux
import KVM
import SwiftletCore

/// A built VM: KVM VM fd, guest memory, the two buses and the vCPUs, ready to run.
/// `start()` runs one thread per vCPU; the main thread's `MainLoop` waits for the end.
public final class VM {
    public let kvm: KVMVM
    public let memory: GuestMemory
    public let vcpus: [KVMVCPU]
    public let devices: MachineDevices
    public let control: VMControl
    public let exitCounters = ExitCounters()
    public var mmioBus: Bus { devices.mmioBus }
    public var pioBus: Bus { devices.pioBus }
    public var consoleInput: (any ConsoleInput)? { devices.consoleInput }
    public var consoleSpace: EventNotifier? { devices.consoleSpace }
    public var powerButton: (any PowerButton)? { devices.powerButton }
    private var threads: [Thread] = []

    /// The signal that kicks a vCPU thread out of KVM_RUN.
    public static let kickSignal: Int32 = SIGUSR1

    init(kvm: KVMVM, memory: GuestMemory, devices: MachineDevices, vcpus: [KVMVCPU]) {
        self.kvm = kvm
        self.memory = memory
        self.devices = devices
        self.vcpus = vcpus
        self.control = devices.control
    }

    /// Starts one thread per vCPU. Call from the main thread after `MainLoop.blockSignals()`.
    public func start() throws(SwiftletError) {
        guard sl_install_kick_handler(VM.kickSignal) == 0 else { throw .lastSystemError("sigaction") }
        try devices.ioThread.start()
        for vcpu in vcpus {
            let runner = VCPURunner(vcpu: vcpu, vm: self)
            do {
                threads.append(try Thread.spawn(named: "vcpu \(vcpu.id)") { runner.loop() })
            } catch {
                control.requestStop(.failure("cannot start vCPU \(vcpu.id) thread: \(error)"))
                throw error
            }
        }
    }

    /// Asks the VM to stop from outside the vCPU threads (signals, API).
    public func requestStop(_ exit: VMExit) { control.requestStop(exit) }

    /// Parks every vCPU outside KVM_RUN; returns once all are parked.
    public func pause() throws(SwiftletError) {
        control.setPaused(true)
        kickAll()
        guard control.waitUntilParked(threads.count, milliseconds: 5000) else {
            throw .guestFailure("vCPUs did not stop within 5 s for pause")
        }
    }

    public func resume() {
        control.setPaused(false)
    }

    public var isPaused: Bool { control.isPaused }

    /// Stops and joins every vCPU thread (after a stop request): kicks them all at once
    /// (a vCPU halted in KVM_RUN would otherwise sleep until its next interrupt), and again
    /// every 100 ms. A thread still running after `VM.joinTimeoutMs` is left behind (and named):
    /// the process is about to exit, and a stuck vCPU must not keep it alive. Returns
    /// whether every thread (vCPUs and device I/O) stopped: only then is the VM's teardown
    /// safe, so only then may a guest reboot build a new one.
    @discardableResult
    public func joinThreads() -> Bool {
        let deadline = monotonicMilliseconds() + VM.joinTimeoutMs
        var allStopped = true
        kickAll()
        for (index, thread) in threads.enumerated() {
            while !thread.join(withinMilliseconds: 100) {
                guard monotonicMilliseconds() < deadline else {
                    printError("swiftlet: vCPU \(index) did not stop within \(VM.joinTimeoutMs / 1000) s; exiting without it")
                    allStopped = false
                    break
                }
                kickAll()
            }
        }
        threads.removeAll()
        // With every vCPU stopped nothing new reaches the devices; let the I/O in flight end.
        let ioStopped = devices.ioThread.stop()
        // A boot time the I/O thread had no time to report (a guest that ends right after
        // its write) is reported now, before the end line.
        if let timer = devices.bootTimer { BootTimeReport.emit(timer) }
        return ioStopped && allStopped
    }

    static let joinTimeoutMs: Int64 = 5000

    /// immediate_exit first, so a vCPU about to enter KVM_RUN leaves at once; the signal
    /// interrupts one already inside.
    private func kickAll() {
        for (vcpu, thread) in zip(vcpus, threads) {
            vcpu.setImmediateExit(true)
            thread.signal(VM.kickSignal)
        }
    }
}
