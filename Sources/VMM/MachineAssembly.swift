import Devices
import KVM
import SwiftletCore

extension Machine {
    /// Builds a VM ready to start, in the one order both architectures share; the
    /// architecture's part is its hooks.
    public static func build(_ config: VMConfig, system: KVMSystem, console: any ConsoleSink) throws(SwiftletError) -> VM {
        try config.validate()
        let records = try devices(config)
        let plan = try plan(config, devices: records)
        // Disks are opened (and locked) before KVM is touched: a bad path fails fast.
        var images: [DiskImage] = []
        for disk in config.disks { images.append(try DiskImage.open(disk.path, readOnly: disk.readOnly)) }
        // Taps likewise: a missing or busy one is the user's to fix.
        var taps: [Tap] = []
        for interface in config.networkInterfaces { taps.append(try Tap.open(interface.tapName)) }
        // And the vsock listener: a uds_path that exists is refused here.
        let vsock = try config.vsock.map { (vsock) throws(SwiftletError) in try VsockDevice(guestCID: vsock.guestCID, udsPath: vsock.udsPath) }

        let memory = try GuestMemory(regions: ramRegions(config), hugePages: config.hugePages)
        let kvm = try system.createVM()
        try prepare(kvm)
        try kvm.map(memory)
        let devices = try MachineDevices(kvm: kvm, memory: memory, console: console)
        let vcpus = try createVCPUs(kvm, config: config, system: system)
        let interruptController = try createInterruptController(kvm, vcpus: vcpus, config: config, devices: devices)
        for record in records.records {
            switch record.kind {
            case .virtioBlock(let index):
                let disk = config.disks[index]
                let limiter = try QueueLimiter(disk.rateLimiter, queue: 0)
                let block = BlockDevice(image: images[index], serial: disk.id, limiter: limiter)
                let transport = try devices.attachVirtio(block, at: record, line: interruptLine(kvm, irq: record.irq ?? 0))
                devices.addDisk(id: disk.id, device: block, transport: transport)
            case .virtioNet(let index):
                let interface = config.networkInterfaces[index]
                let tap = taps[index]
                let mtu = tap.mtu >= NetworkInterfaceConfig.minimumMTU && tap.mtu <= Int(UInt16.max) ? UInt16(tap.mtu) : nil
                let net = NetDevice(backend: tap, mac: (interface.mac ?? MACAddress.random()).bytes, mtu: mtu,
                                    receiveLimiter: try QueueLimiter(interface.rxRateLimiter, queue: VirtioNet.receiveQueue),
                                    transmitLimiter: try QueueLimiter(interface.txRateLimiter, queue: VirtioNet.transmitQueue))
                let transport = try devices.attachVirtio(net, at: record, line: interruptLine(kvm, irq: record.irq ?? 0))
                devices.addNetworkInterface(id: interface.id, device: net, transport: transport)
            case .virtioVsock:
                guard let vsock else { throw .invalidArgument("a vsock record without a vsock configuration") }
                try devices.attachVirtio(vsock, at: record, line: interruptLine(kvm, irq: record.irq ?? 0))
                devices.vsock = vsock
            case .virtioEntropy:
                let entropy = EntropyDevice(random: EntropyDevice.hostRandom,
                                            limiter: try QueueLimiter(config.entropyRateLimiter, queue: 0))
                try devices.attachVirtio(entropy, at: record, line: interruptLine(kvm, irq: record.irq ?? 0))
                devices.entropy = entropy
            case .bootTimer:
                try devices.attachBootTimer(at: record, origin: BootTimeReport.origin(config.processStartTimes))
            default:
                try attachFixed(record, to: devices)
            }
        }
        try boot(plan, vcpus: vcpus, memory: memory, devices: records, interruptController: interruptController, config: config)
        return VM(kvm: kvm, memory: memory, devices: devices, vcpus: vcpus)
    }
}
