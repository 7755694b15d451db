import Devices
import KVM
import SwiftletCore

/// The device objects of a VM being built, and the roles some of them play for the main
/// loop (console input, power button). The machine's hooks fill it from the records.
public final class MachineDevices {
    public let kvm: KVMVM
    public let memory: GuestMemory
    public let console: any ConsoleSink
    public let control: VMControl
    public let mmioBus = Bus(name: "mmio")
    public let pioBus = Bus(name: "pio")
    /// Where host console input goes, and the eventfd it uses to say it has room again.
    public var consoleInput: (any ConsoleInput)?
    public var consoleSpace: EventNotifier?
    /// The machine's graceful-shutdown button, pressed on SIGTERM (and by the API).
    public var powerButton: (any PowerButton)?
    /// Device I/O (virtio queues) runs on this thread.
    let ioThread: IOThread
    public private(set) var transports: [VirtioMMIOTransport] = []
    /// The disks by drive id, for media change.
    public private(set) var disks: [(id: String, device: BlockDevice, transport: VirtioMMIOTransport)] = []
    private var keptAlive: [AnyObject] = []

    init(kvm: KVMVM, memory: GuestMemory, console: any ConsoleSink) throws(SwiftletError) {
        self.kvm = kvm
        self.memory = memory
        self.console = console
        self.control = try VMControl()
        self.ioThread = try IOThread()
    }

    /// Puts `device` on the bus and at the window of `record`.
    public func insert(_ device: any BusDevice, at record: DeviceRecord) throws(SwiftletError) {
        try (record.space == .mmio ? mmioBus : pioBus).insert(device, base: record.base, size: record.size, name: record.kind.description)
    }

    /// Keeps an object alive as long as the VM (an in-kernel device's fd, for one).
    public func retain(_ object: AnyObject) { keptAlive.append(object) }

    /// Runs `action` on the device I/O thread each time `timer` expires (a device's own
    /// timer, such as the RTC's alarm); the timer lives as long as the VM.
    public func watchHostTimer(_ timer: TimerFD, _ action: @escaping () -> Void) throws(SwiftletError) {
        try ioThread.watch(fd: timer.fd, isCounter: true, action)
        retain(timer)
    }

    /// A virtio device behind a virtio-mmio transport at `record`: queue notifications
    /// through ioeventfds into the I/O thread, interrupts through an irqfd where KVM has them.
    @discardableResult
    func attachVirtio(_ device: any VirtioDevice, at record: DeviceRecord, line: any InterruptLine) throws(SwiftletError) -> VirtioMMIOTransport {
        guard let irq = record.irq else { throw .invalidArgument("virtio device at 0x\(hex(record.base)) has no interrupt") }
        let interrupt: any EdgeInterrupt = kvm.hasIrqfd ? try IrqfdInterrupt(vm: kvm, gsi: irq) : PulsedInterrupt(line)
        var notifiers: [EventNotifier] = []
        for _ in device.queueSizes { notifiers.append(try EventNotifier()) }
        let transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: interrupt) { [notifiers] index in
            notifiers[index].notify()
        }
        for (index, notifier) in notifiers.enumerated() {
            if kvm.hasIoeventfd {
                try kvm.registerIoeventfd(notifier.fd, mmioAddress: record.base + VirtioMMIOTransport.queueNotifyOffset,
                                          length: 4, value: UInt64(index))
            }
            try ioThread.watch(notifier) { transport.processQueue(index) }
        }
        for event in device.hostEvents {
            try ioThread.watch(fd: event.fd, isCounter: event.isCounter) { transport.processQueue(event.queue) }
        }
        try insert(transport, at: record)
        transports.append(transport)
        retain(interrupt)
        return transport
    }

    func addDisk(id: String, device: BlockDevice, transport: VirtioMMIOTransport) {
        disks.append((id, device, transport))
    }

    /// The entropy device, if any (for its rate limiter).
    public internal(set) var entropy: EntropyDevice?
    /// The vsock device, if any (for its counters).
    public internal(set) var vsock: VsockDevice?
    /// The boot timer (`--boot-timer`), if any.
    public internal(set) var bootTimer: BootTimer?

    /// New rate limits at runtime (PATCH), Firecracker's semantics: the buckets named are
    /// replaced, the others kept. Takes only the limiters' own locks: never waits on I/O.
    public func updateDiskLimits(of id: String, _ patch: RateLimiterConfig) throws(SwiftletError) {
        guard let disk = disks.first(where: { $0.id == id }) else { throw .invalidArgument("no drive \"\(id)\" in this VM") }
        disk.device.limiter?.update(patch)
    }

    public func updateNetworkLimits(of id: String, rx: RateLimiterConfig?, tx: RateLimiterConfig?) throws(SwiftletError) {
        guard let interface = networkInterfaces.first(where: { $0.id == id }) else {
            throw .invalidArgument("no network interface \"\(id)\" in this VM")
        }
        if let rx { interface.device.receiveLimiter?.update(rx) }
        if let tx { interface.device.transmitLimiter?.update(tx) }
    }

    /// The network interfaces by iface_id.
    public private(set) var networkInterfaces: [(id: String, device: NetDevice, transport: VirtioMMIOTransport)] = []

    func addNetworkInterface(id: String, device: NetDevice, transport: VirtioMMIOTransport) {
        networkInterfaces.append((id, device, transport))
    }

    /// Media change: disk `id` reads and writes the image at `path` from now on, and the
    /// guest sees a configuration change (the new capacity). The same file again (grown,
    /// say) keeps its open file and lock. May block on the file and on the disk's I/O in
    /// flight: call it off the main thread (a BackgroundJob).
    public func changeMedia(of id: String, toPath path: String, readOnly: Bool) throws(SwiftletError) {
        guard let disk = disks.first(where: { $0.id == id }) else { throw .invalidArgument("no drive \"\(id)\" in this VM") }
        let current = disk.device.image
        let image = current.isSameFile(as: path) ? try current.reopened() : try DiskImage.open(path, readOnly: readOnly)
        // The old image comes back and is released here, outside the transport's locks.
        _ = disk.transport.changeConfiguration { disk.device.replace(image: image) }
    }
}
