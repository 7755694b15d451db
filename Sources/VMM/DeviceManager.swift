import SwiftletCore

/// What a device is, as far as the guest's firmware tables need to know.
public enum DeviceKind: Equatable, CustomStringConvertible {
    // arm64 PrimeCell peripherals of QEMU virt's map.
    case pl011, pl031, pl061
    // x86 ISA devices, and the ACPI sleep control register (soft-off).
    case serial16550, i8042, cmos, acpiSleepControl
    /// virtio-blk on disk `VMConfig.disks[disk]`.
    case virtioBlock(disk: Int)
    case virtioEntropy
    /// virtio-net on interface `VMConfig.networkInterfaces[interface]`.
    case virtioNet(interface: Int)
    /// virtio-vsock (VMConfig.vsock).
    case virtioVsock
    /// Firecracker's boot timer (VMConfig.bootTimer): no interrupt, no firmware description.
    case bootTimer

    public var description: String {
        switch self {
        case .pl011: return "PL011 UART"
        case .pl031: return "PL031 RTC"
        case .pl061: return "PL061 GPIO"
        case .serial16550: return "16550 UART"
        case .i8042: return "i8042 keyboard controller"
        case .cmos: return "CMOS RTC"
        case .acpiSleepControl: return "ACPI sleep control register"
        case .virtioBlock(let disk): return "virtio-blk (disk \(disk))"
        case .virtioEntropy: return "virtio-rng"
        case .virtioNet(let interface): return "virtio-net (interface \(interface))"
        case .virtioVsock: return "virtio-vsock"
        case .bootTimer: return "boot timer"
        }
    }

    public var isVirtio: Bool {
        switch self {
        case .virtioBlock, .virtioEntropy, .virtioNet, .virtioVsock: return true
        default: return false
        }
    }
}

public enum AddressSpace: Equatable {
    case mmio, pio
}

/// One device: where it sits and which interrupt it raises. The single source of both
/// facts: the buses, the arm64 device tree, the x86 ACPI tables and MP table, and the
/// kernel command line are all built from these records.
public struct DeviceRecord: Equatable {
    public let kind: DeviceKind
    public let space: AddressSpace
    public let base: UInt64
    public let size: UInt64
    /// The interrupt line: an SPI number from 0 on arm64, a GSI (IOAPIC pin) on x86.
    public let irq: UInt32?

    public init(kind: DeviceKind, space: AddressSpace, base: UInt64, size: UInt64, irq: UInt32?) {
        self.kind = kind
        self.space = space
        self.base = base
        self.size = size
        self.irq = irq
    }

    public var last: UInt64 { base + (size - 1) }
}

/// The windows and interrupt lines a machine has for virtio-mmio devices.
public struct VirtioSlots: Equatable, Sendable {
    public let base: UInt64
    /// Distance between windows; each device's window is this big.
    public let stride: UInt64
    /// The interrupt of slot n is `irqs[n]`; there are as many slots as lines.
    public let irqs: [UInt32]

    public init(base: UInt64, stride: UInt64, irqs: [UInt32]) {
        self.base = base
        self.stride = stride
        self.irqs = irqs
    }
}

/// Hands out addresses and interrupts and keeps the record of every device, in the order
/// they were added (the order the guest enumerates them: the first disk is vda).
/// Pure bookkeeping: the machine attaches a device object to each record afterwards.
public struct DeviceManager: Equatable {
    public private(set) var records: [DeviceRecord] = []
    private let virtio: VirtioSlots
    /// The next virtio interrupt line, and the next window to try (a fixed device may hold
    /// one: x86_64's boot timer takes the first, as in Firecracker).
    private var nextSlot = 0
    private var nextWindow: UInt64 = 0

    public init(virtio: VirtioSlots) { self.virtio = virtio }

    /// A device at a fixed place of the machine's map (the legacy devices).
    public mutating func addFixed(_ kind: DeviceKind, _ space: AddressSpace, base: UInt64, size: UInt64, irq: UInt32?) throws(SwiftletError) {
        try add(DeviceRecord(kind: kind, space: space, base: base, size: size, irq: irq))
    }

    /// A virtio-mmio device in the next free window, with the next interrupt line. Windows
    /// follow each other from the machine's base, passing over any a fixed device holds.
    public mutating func addVirtio(_ kind: DeviceKind) throws(SwiftletError) {
        guard nextSlot < virtio.irqs.count else {
            throw .invalidArgument("too many virtio devices: this machine has \(virtio.irqs.count) virtio-mmio slots")
        }
        var base = virtio.base + nextWindow * virtio.stride
        while records.contains(where: { $0.space == .mmio && $0.base <= base + (virtio.stride - 1) && base <= $0.last }) {
            nextWindow += 1
            base = virtio.base + nextWindow * virtio.stride
        }
        try add(DeviceRecord(kind: kind, space: .mmio, base: base, size: virtio.stride, irq: virtio.irqs[nextSlot]))
        nextSlot += 1
        nextWindow += 1
    }

    private mutating func add(_ record: DeviceRecord) throws(SwiftletError) {
        guard record.size > 0, record.base <= UInt64.max - (record.size - 1) else {
            throw .invalidArgument("device at 0x\(hex(record.base)) has a bad size \(record.size)")
        }
        for other in records where other.space == record.space && other.base <= record.last && record.base <= other.last {
            throw .invalidArgument("device at 0x\(hex(record.base)) overlaps the device at 0x\(hex(other.base))")
        }
        if let irq = record.irq, let other = records.first(where: { $0.irq == irq }) {
            throw .invalidArgument("interrupt \(irq) of the device at 0x\(hex(record.base)) is taken by the device at 0x\(hex(other.base))")
        }
        records.append(record)
    }

    public func first(_ kind: DeviceKind) -> DeviceRecord? { records.first { $0.kind == kind } }

    public var virtioRecords: [DeviceRecord] { records.filter { $0.kind.isVirtio } }

    /// `virtio_mmio.device=SIZE@BASE:IRQ` for each virtio device, for kernels that find
    /// virtio-mmio devices on their command line (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
    public var virtioCommandLine: String {
        var parts: [String] = []
        for record in virtioRecords {
            parts.append("virtio_mmio.device=0x\(hex(record.size))@0x\(hex(record.base)):\(record.irq ?? 0)")
        }
        return parts.joined(separator: " ")
    }
}
