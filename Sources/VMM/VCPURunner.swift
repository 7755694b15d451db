import CLinux
import KVM
import SwiftletCore

/// The per-vCPU run loop: KVM_RUN, dispatch the exit to a bus on this thread, repeat.
/// Nothing on the MMIO/PIO path allocates or takes a lock beyond the device's own.
final class VCPURunner {
    let vcpu: KVMVCPU
    let vm: VM

    init(vcpu: KVMVCPU, vm: VM) {
        self.vcpu = vcpu
        self.vm = vm
    }

    func loop() {
        sl_vcpu_thread_set_run(vcpu.run)
        _ = sl_block_signal(VM.kickSignal, 0)
        let control = vm.control
        while !control.isStopping {
            if control.isPaused {
                control.park()
                continue
            }
            let error = vcpu.runOnce()
            if error != 0 {
                if error == EINTR || error == EAGAIN {
                    vcpu.setImmediateExit(false)
                    continue
                }
                control.requestStop(.failure("KVM_RUN on vCPU \(vcpu.id): \(SwiftletError.errnoString(error))"))
                break
            }
            if let exit = handleExit() {
                control.requestStop(exit)
                break
            }
        }
        sl_vcpu_thread_set_run(nil)
    }

    /// Handles one exit; returns why the VM must stop, if it must.
    @inline(__always)
    private func handleExit() -> VMExit? {
        let run = vcpu.run
        switch Int32(bitPattern: sl_run_exit_reason(run)) {
        case KVM_EXIT_MMIO:
            handleMMIO(run)
            return nil
        case KVM_EXIT_IO:
            handlePortIO(run)
            return nil
        case KVM_EXIT_INTR:
            return nil
        case KVM_EXIT_HLT:
            return .halted
        case KVM_EXIT_SHUTDOWN:
            return .reset
        case KVM_EXIT_SYSTEM_EVENT:
            switch Int32(bitPattern: sl_run_system_event_type(run)) {
            case KVM_SYSTEM_EVENT_SHUTDOWN: return .powerOff
            case KVM_SYSTEM_EVENT_RESET: return .reset
            case KVM_SYSTEM_EVENT_CRASH: return .failure("guest crashed (vCPU \(vcpu.id))")
            default: return .failure("unknown system event \(sl_run_system_event_type(run)) on vCPU \(vcpu.id)")
            }
        case KVM_EXIT_FAIL_ENTRY:
            return .failure("KVM could not enter vCPU \(vcpu.id): hardware reason 0x\(hex(sl_run_hardware_exit_reason(run)))")
        case KVM_EXIT_INTERNAL_ERROR:
            return .failure("KVM internal error on vCPU \(vcpu.id), suberror \(sl_run_internal_suberror(run))")
        default:
            return .failure("unhandled KVM exit reason \(sl_run_exit_reason(run)) on vCPU \(vcpu.id)")
        }
    }

    @inline(__always)
    private func handleMMIO(_ run: UnsafeMutablePointer<kvm_run>) {
        let address = sl_run_mmio_addr(run)
        let length = Int(min(8, sl_run_mmio_len(run)))
        let data = UnsafeMutableRawPointer(sl_run_mmio_data(run)!)
        if sl_run_mmio_is_write(run) != 0 {
            // A write nothing claims is dropped (and counted): wild guest MMIO must not stop the VMM.
            if !vm.mmioBus.write(address, data: UnsafeRawBufferPointer(start: data, count: length)) {
                vm.exitCounters.countUnclaimedMMIO()
            }
        } else {
            let buffer = UnsafeMutableRawBufferPointer(start: data, count: length)
            if !vm.mmioBus.read(address, data: buffer) {
                for i in 0..<length { buffer[i] = 0 }
                vm.exitCounters.countUnclaimedMMIO()
            }
        }
    }

    @inline(__always)
    private func handlePortIO(_ run: UnsafeMutablePointer<kvm_run>) {
        let port = UInt64(sl_run_io_port(run))
        let size = Int(sl_run_io_size(run))
        let count = Int(sl_run_io_count(run))
        let offset = sl_run_io_data_offset(run)
        // KVM fills these; still, no access may leave the kvm_run mapping whatever they say.
        guard size == 1 || size == 2 || size == 4, offset <= UInt64(vm.kvmRunDataLimit),
              count <= (vm.kvmRunDataLimit - Int(offset)) / size else {
            vm.exitCounters.countMalformedExit()
            return
        }
        let base = UnsafeMutableRawPointer(sl_run_io_data(run)!)
        let isOut = sl_run_io_direction(run) == UInt8(KVM_EXIT_IO_OUT)
        for i in 0..<count {
            let element = base + i * size
            if isOut {
                if !vm.pioBus.write(port, data: UnsafeRawBufferPointer(start: element, count: size)) {
                    vm.exitCounters.countUnclaimedPIO()
                }
            } else {
                let buffer = UnsafeMutableRawBufferPointer(start: element, count: size)
                // An unbacked port reads as all ones, as on a PC's floating bus.
                if !vm.pioBus.read(port, data: buffer) {
                    for j in 0..<size { buffer[j] = 0xFF }
                    vm.exitCounters.countUnclaimedPIO()
                }
            }
        }
    }
}
