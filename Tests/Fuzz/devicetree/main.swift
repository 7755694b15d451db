import ARM64
import CLinux
import FuzzKit
import SwiftletCore

// DeviceTree.generate on random configurations: vCPU counts a VMConfig allows, any memory
// size, bootargs bytes, an initrd range anywhere, rng-seed bytes, GICv2/v3, PMU on/off.
// It must not trap or throw, and libfdt must accept what it writes: fdt_check_header,
// fdt_check_full, totalsize equal to the blob's size, and /chosen carrying the bootargs
// and rng-seed it was given.
//
// Input: flags byte (bit 0: GICv2, bit 1: PMU, bit 2: initrd, bits 3-4: memory kind,
// bit 5: many CPUs), cpus (1 byte: 1...8, or with bit 5 2 bytes: 1...VMConfig.maxCPUs),
// memory (kind 0: 2 bytes of MiB, 1: 4 bytes of MiB, else an edge value or 8 bytes),
// initrd start and end (edge values, put in order), rng-seed (length byte + bytes), then
// the bootargs.

func property(_ dtb: [UInt8], _ path: String, _ name: String) -> [UInt8]? {
    dtb.withUnsafeBytes { blob -> [UInt8]? in
        let node = fdt_path_offset(blob.baseAddress, path)
        guard node >= 0 else { return nil }
        var length: Int32 = 0
        guard let value = fdt_getprop(blob.baseAddress, node, name, &length), length >= 0 else { return nil }
        return Array(UnsafeRawBufferPointer(start: value, count: Int(length)))
    }
}

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    let flags = input.byte()
    let cpus = flags & 0x20 != 0 ? input.int(in: 1...VMConfig.maxCPUs) : input.int(in: 1...8)
    let memory: UInt64
    switch (flags >> 3) & 3 {
    case 0: memory = UInt64(input.uint16()) << 20                 // whole MiB, as the CLI gives
    case 1: memory = UInt64(input.uint32()) << 20
    default: memory = input.interestingUInt64()
    }
    var config = DeviceTreeConfig(cpus: cpus, memorySize: memory)
    config.gic = flags & 1 != 0 ? .v2 : .v3
    config.pmu = flags & 2 != 0
    config.its = flags & 0x40 == 0
    let a = input.interestingUInt64(), b = input.interestingUInt64()
    if flags & 4 != 0 { config.initrd = (start: min(a, b), end: max(a, b)) }
    config.rngSeed = input.shortBytes()
    let bootargs = String(decoding: input.rest(), as: UTF8.self)
    config.bootargs = bootargs

    let dtb: [UInt8]
    do {
        dtb = try DeviceTree.generate(config)
    } catch {
        fatalError("DeviceTree.generate threw for \(cpus) CPUs, \(memory) bytes: \(error)")
    }
    dtb.withUnsafeBytes { blob in
        let header = fdt_check_header(blob.baseAddress)
        require(header == 0, "fdt_check_header: \(String(cString: fdt_strerror(header)))")
        require(Int(sl_fdt_totalsize(blob.baseAddress)) == blob.count, "totalsize is not the blob's size")
        let full = fdt_check_full(blob.baseAddress, blob.count)
        require(full == 0, "fdt_check_full: \(String(cString: fdt_strerror(full)))")
    }
    // A C string property: the bootargs up to any NUL, then the terminator.
    let expected = Array(bootargs.utf8.prefix(while: { $0 != 0 })) + [0]
    require(property(dtb, "/chosen", "bootargs") == expected, "chosen/bootargs differs from the config")
    if !config.rngSeed.isEmpty {
        require(property(dtb, "/chosen", "rng-seed") == config.rngSeed, "chosen/rng-seed differs from the config")
    }
    require(property(dtb, "/cpus/cpu@0", "reg") != nil, "no /cpus/cpu@0")
}
