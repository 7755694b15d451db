import CLinux
import SwiftletCore

/// A VM file descriptor: memory slots, vCPUs, interrupt lines and in-kernel devices.
public final class KVMVM {
    public let fd: Int32
    public let system: KVMSystem

    init(fd: Int32, system: KVMSystem) {
        self.fd = fd
        self.system = system
    }

    deinit { close(fd) }

    /// KVM_CHECK_EXTENSION on the VM: some answers depend on the VM (e.g. max vCPUs).
    public func check(_ capability: Int32) -> Int32 {
        max(0, sl_ioctl_value(fd, SL_KVM_CHECK_EXTENSION, UInt(capability)))
    }

    public func setUserMemoryRegion(slot: UInt32, guestAddress: UInt64, size: UInt64,
                                    host: UnsafeMutableRawPointer) throws(SwiftletError) {
        var region = kvm_userspace_memory_region(slot: slot, flags: 0, guest_phys_addr: guestAddress,
                                                 memory_size: size, userspace_addr: UInt64(UInt(bitPattern: host)))
        guard sl_ioctl(fd, SL_KVM_SET_USER_MEMORY_REGION, &region) == 0 else {
            throw .lastSystemError("KVM_SET_USER_MEMORY_REGION slot \(slot) at 0x\(hex(guestAddress))")
        }
    }

    /// Registers every region of `memory` as its own slot.
    public func map(_ memory: GuestMemory) throws(SwiftletError) {
        for (slot, mapping) in memory.mappings.enumerated() {
            try setUserMemoryRegion(slot: UInt32(slot), guestAddress: mapping.region.guestBase,
                                    size: mapping.region.size, host: mapping.host)
        }
    }

    public func createVCPU(id: Int) throws(SwiftletError) -> KVMVCPU {
        let vcpufd = sl_ioctl_value(fd, SL_KVM_CREATE_VCPU, UInt(id))
        guard vcpufd >= 0 else { throw .lastSystemError("KVM_CREATE_VCPU \(id)") }
        let mapped = mmap(nil, system.vcpuMmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0)
        guard let mapped, sl_map_failed(mapped) == 0 else {
            let error = SwiftletError.lastSystemError("mmap of vCPU \(id) kvm_run")
            close(vcpufd)
            throw error
        }
        return KVMVCPU(fd: vcpufd, id: id, run: mapped.assumingMemoryBound(to: kvm_run.self),
                       runSize: system.vcpuMmapSize)
    }

    /// KVM_IRQ_LINE: `irq` is encoded per architecture by the caller.
    @inline(__always)
    public func setIRQLine(_ irq: UInt32, level: Bool) -> Int32 {
        var line = kvm_irq_level()
        line.irq = irq
        line.level = level ? 1 : 0
        return sl_ioctl(fd, SL_KVM_IRQ_LINE, &line) == 0 ? 0 : sl_errno()
    }

    /// KVM_CREATE_DEVICE; nil when this host's KVM has no such device type.
    public func createDevice(type: UInt32) throws(SwiftletError) -> KVMDevice? {
        var device = kvm_create_device(type: type, fd: 0, flags: 0)
        guard sl_ioctl(fd, SL_KVM_CREATE_DEVICE, &device) == 0 else {
            if sl_errno() == ENODEV || sl_errno() == ENXIO { return nil }
            throw .lastSystemError("KVM_CREATE_DEVICE type \(type)")
        }
        return KVMDevice(fd: Int32(device.fd))
    }

    /// Whether KVM_CREATE_DEVICE of `type` would succeed (KVM_CREATE_DEVICE_TEST).
    public func canCreateDevice(type: UInt32) throws(SwiftletError) -> Bool {
        var device = kvm_create_device(type: type, fd: 0, flags: UInt32(KVM_CREATE_DEVICE_TEST))
        guard sl_ioctl(fd, SL_KVM_CREATE_DEVICE, &device) == 0 else {
            if sl_errno() == ENODEV || sl_errno() == ENXIO { return false }
            throw .lastSystemError("KVM_CREATE_DEVICE (test) type \(type)")
        }
        return true
    }
}

/// An in-kernel device (e.g. the vGIC) created with KVM_CREATE_DEVICE.
public final class KVMDevice {
    public let fd: Int32

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    public func setAttribute(group: UInt32, attribute: UInt64, value: UnsafeMutableRawPointer?) throws(SwiftletError) {
        var attr = kvm_device_attr(flags: 0, group: group, attr: attribute,
                                   addr: UInt64(UInt(bitPattern: value)))
        guard sl_ioctl(fd, SL_KVM_SET_DEVICE_ATTR, &attr) == 0 else {
            throw .lastSystemError("KVM_SET_DEVICE_ATTR group \(group) attr \(attribute)")
        }
    }

    public func hasAttribute(group: UInt32, attribute: UInt64) -> Bool {
        var attr = kvm_device_attr(flags: 0, group: group, attr: attribute, addr: 0)
        return sl_ioctl(fd, SL_KVM_HAS_DEVICE_ATTR, &attr) == 0
    }
}
