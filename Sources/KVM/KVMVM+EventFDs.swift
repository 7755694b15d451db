import CLinux
import SwiftletCore

extension KVMVM {
    /// Whether KVM can signal guest writes through eventfds and inject interrupts from them.
    public var hasIoeventfd: Bool { check(KVM_CAP_IOEVENTFD) > 0 }
    public var hasIrqfd: Bool { check(KVM_CAP_IRQFD) > 0 }

    /// KVM_IOEVENTFD: a guest write of `length` bytes equal to `value` at MMIO `address`
    /// signals `eventFD` inside KVM, without an exit to user space.
    public func registerIoeventfd(_ eventFD: Int32, mmioAddress address: UInt64, length: UInt32, value: UInt64) throws(SwiftletError) {
        var request = kvm_ioeventfd()
        request.datamatch = value
        request.addr = address
        request.len = length
        request.fd = eventFD
        request.flags = SL_KVM_IOEVENTFD_FLAG_DATAMATCH
        guard sl_ioctl(fd, SL_KVM_IOEVENTFD, &request) == 0 else {
            throw .lastSystemError("KVM_IOEVENTFD at 0x\(hex(address))")
        }
    }

    /// KVM_IRQFD: a write to `eventFD` raises and lowers interrupt `gsi` (an edge) inside
    /// KVM. On arm64 `gsi` is the SPI number from 0 (INTID − 32).
    public func registerIrqfd(_ eventFD: Int32, gsi: UInt32) throws(SwiftletError) {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: eventFD)
        request.gsi = gsi
        guard sl_ioctl(fd, SL_KVM_IRQFD, &request) == 0 else {
            throw .lastSystemError("KVM_IRQFD for interrupt \(gsi)")
        }
    }
}
