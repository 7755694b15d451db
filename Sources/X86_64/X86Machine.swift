import CLinux
import Devices
import KVM
import SwiftletCore
import VMM

/// The x86_64 PC-like machine: RAM from 0 (split around the 32-bit MMIO hole), in-kernel
/// irqchip and PIT, COM1 16550, i8042 for reset.
public enum X86Machine: Machine {
    public static let name = "x86_64"

    public static func build(_ config: VMConfig, system: KVMSystem, console: any ConsoleSink) throws(SwiftletError) -> VM {
        try config.validate()
        guard let kernelPath = config.kernelPath else { throw .invalidArgument("no kernel given (--kernel PATH)") }
        let kernel = try FileContents.read(kernelPath, what: "kernel")

        let memory = try GuestMemory(regions: ramRegions(config.memoryBytes))
        let kvm = try system.createVM()
        try kvm.setTSSAddress(Layout.tss)
        try kvm.createIRQChipAndPIT()
        try kvm.map(memory)

        let mmio = Bus(name: "mmio")
        let pio = Bus(name: "pio")
        let resetLine = MachineReset()
        try pio.insert(Serial16550(output: console), base: Layout.serialCOM1, size: Serial16550.size)
        try pio.insert(I8042(resetLine: resetLine), base: I8042.base, size: I8042.size)

        let entry = try loadRaw(kernel, into: memory)
        try LongMode.writeTables(memory)

        var vcpus: [KVMVCPU] = []
        for id in 0..<config.cpus {
            let vcpu = try kvm.createVCPU(id: id)
            try LongMode.enter(vcpu, entry: entry, bootParams: Layout.bootParams)
            vcpus.append(vcpu)
        }
        let vm = try VM(kvm: kvm, memory: memory, mmioBus: mmio, pioBus: pio, vcpus: vcpus)
        resetLine.vm = Unmanaged.passUnretained(vm)
        return vm
    }

    /// RAM from 0 up to the MMIO hole, the remainder from 4 GiB.
    static func ramRegions(_ bytes: UInt64) -> [GuestMemory.Region] {
        if bytes <= Layout.mmioHoleStart { return [.init(guestBase: 0, size: bytes)] }
        return [.init(guestBase: 0, size: Layout.mmioHoleStart),
                .init(guestBase: Layout.highRAMStart, size: bytes - Layout.mmioHoleStart)]
    }

    /// A raw image (no boot header) is copied to 1 MiB and entered there in long mode.
    static func loadRaw(_ image: FileContents, into memory: GuestMemory) throws(SwiftletError) -> UInt64 {
        guard !image.bytes.isEmpty else { throw .invalidImage("kernel \(image.path) is empty") }
        guard memory.contains(Layout.kernel, length: UInt64(image.bytes.count)) else {
            throw .invalidImage("kernel \(image.path) (\(image.bytes.count) bytes) does not fit in guest memory at 0x\(hex(Layout.kernel))")
        }
        try memory.write(image.bytes, at: Layout.kernel)
        return Layout.kernel
    }
}

/// The i8042's reset line: stops the VM with `.reset`.
final class MachineReset: ResetLine {
    // Unowned: the VM owns the buses that own this; a strong reference would be a cycle.
    var vm: Unmanaged<VM>?
    func reset() { vm?.takeUnretainedValue().requestStop(.reset) }
}
