import KVM

// CPUID bits Swiftlet sets (Intel SDM vol. 2A, CPUID).
private let LEAF1_ECX_TSC_DEADLINE: UInt32 = 1 << 24
private let LEAF1_ECX_HYPERVISOR: UInt32 = 1 << 31
private let LEAF1_EDX_HTT: UInt32 = 1 << 28

/// Per-vCPU CPUID: what KVM supports, with this vCPU's APIC id and the topology of
/// `count` single-threaded cores in one package.
public enum CPUID {
    public static func forVCPU(_ supported: [CPUIDLeaf], index: Int, count: Int) -> [CPUIDLeaf] {
        let apicID = UInt32(index)
        return supported.map { original in
            var entry = original
            switch entry.function {
            case 1:
                // EBX[31:24] initial APIC id, [23:16] logical processors per package,
                // [15:8] CLFLUSH line size in 8-byte units.
                entry.ebx = apicID << 24 | UInt32(min(count, 255)) << 16 | 8 << 8
                entry.ecx |= LEAF1_ECX_HYPERVISOR
                if count > 1 { entry.edx |= LEAF1_EDX_HTT } else { entry.edx &= ~LEAF1_EDX_HTT }
            case 4:
                // EAX[31:26]: cores per package - 1; keep the cache description.
                entry.eax = (entry.eax & 0x03FF_FFFF) | UInt32(min(count, 64) - 1) << 26
            case 0xB, 0x1F:
                // Extended topology: level 0 = SMT (1 thread), level 1 = core.
                entry.edx = apicID
                switch entry.index {
                case 0:
                    entry.eax = 0
                    entry.ebx = 1
                    entry.ecx = 1 << 8 | entry.index
                case 1:
                    entry.eax = UInt32(bitWidth(count))
                    entry.ebx = UInt32(count)
                    entry.ecx = 2 << 8 | entry.index
                default:
                    entry.eax = 0
                    entry.ebx = 0
                    entry.ecx = entry.index
                }
            default:
                break
            }
            return entry
        }
    }

    /// Bits needed to number `count` APIC ids.
    static func bitWidth(_ count: Int) -> Int {
        var bits = 0
        while (1 << bits) < count { bits += 1 }
        return bits
    }
}
