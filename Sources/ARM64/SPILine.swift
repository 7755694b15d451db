import KVM
import SwiftletCore

// KVM_IRQ_LINE's irq field on arm64 (Documentation/virt/kvm/api.rst): type in bits 24-31,
// vCPU index in 16-23, number in 0-15. SPIs are numbered from 32 in the GIC's INTID space.
private let KVM_ARM_IRQ_TYPE_SHIFT: UInt32 = 24
private let KVM_ARM_IRQ_TYPE_SPI: UInt32 = 1
private let SPI_BASE: UInt32 = 32

/// A shared peripheral interrupt of the in-kernel vGIC.
final class SPILine: InterruptLine {
    private let vm: KVMVM
    private let irq: UInt32

    init(vm: KVMVM, spi: UInt32) {
        self.vm = vm
        self.irq = KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT | (SPI_BASE + spi)
    }

    func setLevel(_ high: Bool) {
        _ = vm.setIRQLine(irq, level: high)
    }
}
