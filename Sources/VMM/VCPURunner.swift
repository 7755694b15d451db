import CLinux
import KVM
import SwiftletCore

/// The per-vCPU run loop: KVM_RUN, dispatch the decoded exit to a bus on this thread,
/// repeat. Nothing on the MMIO/PIO path allocates or takes a lock beyond the device's own.
final class VCPURunner {
    let vcpu: KVMVCPU
    let vm: VM

    init(vcpu: KVMVCPU, vm: VM) {
        self.vcpu = vcpu
        self.vm = vm
    }

    func loop() {
        Seccomp.enter(.vcpu)
        vcpu.bindKickToThisThread(true)
        _ = sl_block_signal(VM.kickSignal, 0)
        let control = vm.control
        while !control.isStopping {
            if control.isPaused {
                control.park()
                continue
            }
            if let exit = handle(vcpu.run()) {
                control.requestStop(exit)
                break
            }
        }
        vcpu.bindKickToThisThread(false)
    }

    /// Handles one exit; returns why the VM must stop, if it must.
    @inline(__always)
    private func handle(_ exit: VCPUExit) -> VMExit? {
        vm.exitCounters.count(exit)
        switch exit {
        case .mmioRead(let address, let data):
            if !vm.mmioBus.read(address, data: data) {
                for i in 0..<data.count { data[i] = 0 }
                vm.exitCounters.countUnclaimedMMIO()
                warnUnclaimed(mmio: address, bytes: data.count, write: false)
            }
        case .mmioWrite(let address, let data):
            // A write nothing claims is dropped (and counted): wild guest MMIO must not stop the VMM.
            if !vm.mmioBus.write(address, data: data) {
                vm.exitCounters.countUnclaimedMMIO()
                warnUnclaimed(mmio: address, bytes: data.count, write: true)
            }
        case .portIn(let port, let size, let count, let data):
            for i in 0..<count {
                let element = UnsafeMutableRawBufferPointer(start: data + i * size, count: size)
                // An unbacked port reads as all ones, as on a PC's floating bus.
                if !vm.pioBus.read(UInt64(port), data: element) {
                    for j in 0..<size { element[j] = 0xFF }
                    vm.exitCounters.countUnclaimedPIO()
                    warnUnclaimed(port: port, bytes: size, write: false)
                }
            }
        case .portOut(let port, let size, let count, let data):
            for i in 0..<count {
                if !vm.pioBus.write(UInt64(port), data: UnsafeRawBufferPointer(start: data + i * size, count: size)) {
                    vm.exitCounters.countUnclaimedPIO()
                    warnUnclaimed(port: port, bytes: size, write: true)
                }
            }
        case .interrupted:
            break
        case .malformed:
            vm.exitCounters.countMalformedExit()
            GuestWarnings.shared.warnOnce(.malformedExit, "vCPU \(vcpu.id) had an exit with impossible sizes or offsets, ignored")
        case .halt:
            return .halted(vcpu: vcpu.id)
        case .shutdown:
            // KVM_EXIT_SHUTDOWN: on x86 a triple fault, which a PC answers with a reset.
            return .reset(how: "triple fault on vCPU \(vcpu.id)")
        case .systemEvent(let event):
            switch event {
            case .shutdown: return .powerOff(how: VCPUExit.SystemEvent.shutdownSource)
            case .reset: return .reset(how: VCPUExit.SystemEvent.resetSource)
            case .crash: return .failure("guest crashed (vCPU \(vcpu.id))")
            case .other(let type): return .failure("unknown system event \(type) on vCPU \(vcpu.id)")
            }
        case .failEntry(let reason):
            return .failure("KVM could not enter vCPU \(vcpu.id): hardware reason 0x\(hex(reason))")
        case .internalError(let suberror):
            return .failure("KVM internal error on vCPU \(vcpu.id), suberror \(suberror)")
        case .unknown(let reason):
            return .failure("unhandled KVM exit reason \(reason) on vCPU \(vcpu.id)")
        case .runFailed(let code):
            return .failure("KVM_RUN on vCPU \(vcpu.id): \(SwiftletError.errnoString(code))")
        }
        return nil
    }

    // Out of line: only accesses no device claims come here, and only the first one logs.
    @inline(never)
    private func warnUnclaimed(mmio address: UInt64, bytes: Int, write: Bool) {
        GuestWarnings.shared.warnOnce(.unclaimedMMIO, "vCPU \(vcpu.id): a \(bytes)-byte MMIO \(write ? "write to" : "read of") "
            + "0x\(hex(address)), which no device claims, \(write ? "was dropped" : "read zeros")")
    }

    @inline(never)
    private func warnUnclaimed(port: UInt16, bytes: Int, write: Bool) {
        GuestWarnings.shared.warnOnce(.unclaimedPIO, "vCPU \(vcpu.id): a \(bytes)-byte \(write ? "write to" : "read of") I/O port "
            + "0x\(hex(UInt64(port))), which no device claims, \(write ? "was dropped" : "read all ones")")
    }
}
