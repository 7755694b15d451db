import Synchronization
import SwiftletCore

// virtio-mmio version 2 register map (virtio 1.2 §4.2.2), offsets from the window's base.
private let VIRTIO_MMIO_MAGIC_VALUE: UInt64 = 0x000
private let VIRTIO_MMIO_VERSION: UInt64 = 0x004
private let VIRTIO_MMIO_DEVICE_ID: UInt64 = 0x008
private let VIRTIO_MMIO_VENDOR_ID: UInt64 = 0x00C
private let VIRTIO_MMIO_DEVICE_FEATURES: UInt64 = 0x010
private let VIRTIO_MMIO_DEVICE_FEATURES_SEL: UInt64 = 0x014
private let VIRTIO_MMIO_DRIVER_FEATURES: UInt64 = 0x020
private let VIRTIO_MMIO_DRIVER_FEATURES_SEL: UInt64 = 0x024
private let VIRTIO_MMIO_QUEUE_SEL: UInt64 = 0x030
private let VIRTIO_MMIO_QUEUE_NUM_MAX: UInt64 = 0x034
private let VIRTIO_MMIO_QUEUE_NUM: UInt64 = 0x038
private let VIRTIO_MMIO_QUEUE_READY: UInt64 = 0x044
private let VIRTIO_MMIO_QUEUE_NOTIFY: UInt64 = 0x050
private let VIRTIO_MMIO_INTERRUPT_STATUS: UInt64 = 0x060
private let VIRTIO_MMIO_INTERRUPT_ACK: UInt64 = 0x064
private let VIRTIO_MMIO_STATUS: UInt64 = 0x070
private let VIRTIO_MMIO_QUEUE_DESC_LOW: UInt64 = 0x080
private let VIRTIO_MMIO_QUEUE_DESC_HIGH: UInt64 = 0x084
private let VIRTIO_MMIO_QUEUE_DRIVER_LOW: UInt64 = 0x090
private let VIRTIO_MMIO_QUEUE_DRIVER_HIGH: UInt64 = 0x094
private let VIRTIO_MMIO_QUEUE_DEVICE_LOW: UInt64 = 0x0A0
private let VIRTIO_MMIO_QUEUE_DEVICE_HIGH: UInt64 = 0x0A4
private let VIRTIO_MMIO_SHM_LEN_LOW: UInt64 = 0x0B0
private let VIRTIO_MMIO_SHM_BASE_HIGH: UInt64 = 0x0BC
private let VIRTIO_MMIO_CONFIG_GENERATION: UInt64 = 0x0FC
private let VIRTIO_MMIO_CONFIG: UInt64 = 0x100

private let MAGIC: UInt32 = 0x7472_6976          // "virt"
private let VERSION_2: UInt32 = 2
private let VENDOR_ID: UInt32 = 0x5357_4C54      // "SWLT"
private let VIRTIO_MMIO_INT_VRING: UInt32 = 1
private let VIRTIO_MMIO_INT_CONFIG: UInt32 = 2

/// The virtio-mmio transport of one device: registers, feature negotiation, the status
/// state machine and the queues. vCPU threads access the registers; the I/O thread calls
/// `processQueue` when a queue's notifier fires.
///
/// Locks, always taken in this order: `processing` (held while the device works on its
/// queues, and by a vCPU thread only to activate, disable a queue or reset, so a register
/// access never waits for disk I/O), then `registers` (short sections only). The
/// interrupt status is an atomic: reading and acknowledging it takes no lock.
public final class VirtioMMIOTransport: BusDevice {
    public let device: any VirtioDevice
    private let memory: GuestMemory
    private let interrupt: any EdgeInterrupt
    /// Signalled by a guest write to QueueNotify (by KVM itself through an ioeventfd where it
    /// can; by `write` otherwise). Index = queue index.
    private let notify: (Int) -> Void

    private let registers = Lock()
    private let processing = Lock()
    private let interruptStatus = Atomic<UInt32>(0)
    private let needsResetEvents = Atomic<UInt64>(0)
    private let refusedWrites = Atomic<UInt64>(0)

    // Under `registers`:
    private var status: UInt32 = 0
    private var deviceFeaturesSelect: UInt32 = 0
    private var driverFeaturesSelect: UInt32 = 0
    private var driverFeatures: UInt64 = 0
    private var queueSelect: UInt32 = 0
    private var queueConfigs: [QueueConfig]
    private var queueReady: [Bool]
    private var configGeneration: UInt32 = 0
    private var lastError: String?

    // Under `processing`:
    private var queues: [Virtqueue?]
    private var negotiated: UInt64 = 0

    /// Features every device gets from the transport.
    public static let transportFeatures = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors | VirtioFeature.ringEventIndex

    public init(device: any VirtioDevice, memory: GuestMemory, interrupt: any EdgeInterrupt, notify: @escaping (Int) -> Void) {
        self.device = device
        self.memory = memory
        self.interrupt = interrupt
        self.notify = notify
        let count = device.queueSizes.count
        queueConfigs = [QueueConfig](repeating: QueueConfig(), count: count)
        queueReady = [Bool](repeating: false, count: count)
        queues = [Virtqueue?](repeating: nil, count: count)
    }

    /// Where the guest writes a queue's index to notify it (the ioeventfd's address).
    public static let queueNotifyOffset = VIRTIO_MMIO_QUEUE_NOTIFY

    public var queueCount: Int { queueConfigs.count }
    public var offeredFeatures: UInt64 { device.deviceFeatures | VirtioMMIOTransport.transportFeatures }
    /// The device status register as the driver reads it.
    public var deviceStatus: UInt32 { registers.withLock { status } }
    /// Times the device gave up on a malformed queue (DEVICE_NEEDS_RESET), and why, last.
    public var needsResetCount: UInt64 { needsResetEvents.load(ordering: .relaxed) }
    public var lastNeedsResetReason: String? { registers.withLock { lastError } }
    /// Register writes refused as out of order or not allowed in the current state.
    public var refusedWriteCount: UInt64 { refusedWrites.load(ordering: .relaxed) }

    // MARK: registers (vCPU threads)

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        if offset >= VIRTIO_MMIO_CONFIG {
            registers.withLock { device.readConfig(at: offset - VIRTIO_MMIO_CONFIG, into: data) }
            return
        }
        if offset == VIRTIO_MMIO_INTERRUPT_STATUS {
            store(interruptStatus.load(ordering: .acquiring), into: data)
            return
        }
        let value: UInt32 = registers.withLock {
            switch offset {
            case VIRTIO_MMIO_MAGIC_VALUE: return MAGIC
            case VIRTIO_MMIO_VERSION: return VERSION_2
            case VIRTIO_MMIO_DEVICE_ID: return device.deviceID
            case VIRTIO_MMIO_VENDOR_ID: return VENDOR_ID
            case VIRTIO_MMIO_DEVICE_FEATURES:
                switch deviceFeaturesSelect {
                case 0: return UInt32(truncatingIfNeeded: offeredFeatures)
                case 1: return UInt32(truncatingIfNeeded: offeredFeatures >> 32)
                default: return 0
                }
            case VIRTIO_MMIO_QUEUE_NUM_MAX:
                guard let index = selectedQueue else { return 0 }
                return UInt32(device.queueSizes[index])
            case VIRTIO_MMIO_QUEUE_READY:
                guard let index = selectedQueue else { return 0 }
                return queueReady[index] ? 1 : 0
            case VIRTIO_MMIO_STATUS: return status
            case VIRTIO_MMIO_SHM_LEN_LOW...VIRTIO_MMIO_SHM_BASE_HIGH:
                // No shared memory regions: every length and base reads as all ones (−1).
                return 0xFFFF_FFFF
            case VIRTIO_MMIO_CONFIG_GENERATION: return configGeneration
            default: return 0
            }
        }
        store(value, into: data)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset >= VIRTIO_MMIO_CONFIG {
            registers.withLock { device.writeConfig(at: offset - VIRTIO_MMIO_CONFIG, from: data) }
            return
        }
        let value = load(data)
        switch offset {
        case VIRTIO_MMIO_QUEUE_NOTIFY:
            // Only reached when KVM has no ioeventfd for this write; the work is the I/O thread's.
            if Int(value) < queueCount { notify(Int(value)) } else { refuse() }
        case VIRTIO_MMIO_INTERRUPT_ACK:
            interruptStatus.bitwiseAnd(~value, ordering: .acquiringAndReleasing)
        case VIRTIO_MMIO_STATUS:
            writeStatus(value)
        case VIRTIO_MMIO_QUEUE_READY:
            writeQueueReady(value)
        default:
            registers.withLock { writeRegister(offset, value) }
        }
    }

    private var selectedQueue: Int? { Int(queueSelect) < queueCount ? Int(queueSelect) : nil }

    /// Plain registers; called with `registers` held.
    private func writeRegister(_ offset: UInt64, _ value: UInt32) {
        switch offset {
        case VIRTIO_MMIO_DEVICE_FEATURES_SEL: deviceFeaturesSelect = value
        case VIRTIO_MMIO_DRIVER_FEATURES_SEL: driverFeaturesSelect = value
        case VIRTIO_MMIO_DRIVER_FEATURES:
            // Features are fixed once FEATURES_OK is set (§3.1.1).
            guard status & VirtioStatus.featuresOK == 0, status & VirtioStatus.driver != 0 else { refuse(); return }
            switch driverFeaturesSelect {
            case 0: driverFeatures = (driverFeatures & 0xFFFF_FFFF_0000_0000) | UInt64(value)
            case 1: driverFeatures = (driverFeatures & 0xFFFF_FFFF) | UInt64(value) << 32
            default: if value != 0 { refuse() }
            }
        case VIRTIO_MMIO_QUEUE_SEL: queueSelect = value
        // A size past 16 bits is kept as 0, which activation refuses (NEEDS_RESET).
        case VIRTIO_MMIO_QUEUE_NUM: updateQueue { $0.size = value <= UInt32(UInt16.max) ? UInt16(value) : 0 }
        case VIRTIO_MMIO_QUEUE_DESC_LOW: updateQueue { $0.descriptorTable = low($0.descriptorTable, value) }
        case VIRTIO_MMIO_QUEUE_DESC_HIGH: updateQueue { $0.descriptorTable = high($0.descriptorTable, value) }
        case VIRTIO_MMIO_QUEUE_DRIVER_LOW: updateQueue { $0.availableRing = low($0.availableRing, value) }
        case VIRTIO_MMIO_QUEUE_DRIVER_HIGH: updateQueue { $0.availableRing = high($0.availableRing, value) }
        case VIRTIO_MMIO_QUEUE_DEVICE_LOW: updateQueue { $0.usedRing = low($0.usedRing, value) }
        case VIRTIO_MMIO_QUEUE_DEVICE_HIGH: updateQueue { $0.usedRing = high($0.usedRing, value) }
        default: refuse()  // read-only or unknown register
        }
    }

    /// A queue's configuration may change only while it is not ready and the driver is
    /// not yet running (§4.2.3.2).
    private func updateQueue(_ change: (inout QueueConfig) -> Void) {
        guard let index = selectedQueue, !queueReady[index], status & VirtioStatus.driverOK == 0 else { refuse(); return }
        change(&queueConfigs[index])
    }

    private func writeQueueReady(_ value: UInt32) {
        processing.withLock {
            registers.withLock {
                guard let index = selectedQueue else { refuse(); return }
                if value & 1 == 1 {
                    guard status & VirtioStatus.driverOK == 0 else { refuse(); return }
                    queueReady[index] = true
                } else {
                    // Disabling a queue takes it away from the device at once.
                    queueReady[index] = false
                    queues[index] = nil
                }
            }
        }
    }

    private func writeStatus(_ value: UInt32) {
        var activated = false
        processing.withLock {
            registers.withLock {
                if value == 0 {
                    resetLocked()
                    return
                }
                // The driver only ever adds bits (§2.1.2); DEVICE_NEEDS_RESET is the device's.
                let wanted = value & ~VirtioStatus.deviceNeedsReset
                let current = status & ~VirtioStatus.deviceNeedsReset
                guard wanted & current == current else { refuse(); return }
                let added = wanted & ~current
                if added & VirtioStatus.failed != 0 {
                    status |= VirtioStatus.failed
                    queues = [Virtqueue?](repeating: nil, count: queueCount)
                    return
                }
                var next = status
                if added & VirtioStatus.acknowledge != 0 { next |= VirtioStatus.acknowledge }
                if added & VirtioStatus.driver != 0 {
                    guard next & VirtioStatus.acknowledge != 0 else { refuse(); return }
                    next |= VirtioStatus.driver
                }
                if added & VirtioStatus.featuresOK != 0 {
                    guard next & VirtioStatus.driver != 0 else { refuse(); return }
                    // Unacceptable features: FEATURES_OK stays clear, which the driver reads back (§3.1.1).
                    if acceptable(driverFeatures) { next |= VirtioStatus.featuresOK } else { refuse() }
                }
                if added & VirtioStatus.driverOK != 0 {
                    guard next & VirtioStatus.featuresOK != 0 else { refuse(); return }
                    next |= VirtioStatus.driverOK
                    status = next
                    activated = activateLocked()
                    return
                }
                status = next
            }
        }
        if activated {
            // Buffers made available before DRIVER_OK are not lost: look at every queue once.
            for index in 0..<queueCount { notify(index) }
        }
    }

    private func acceptable(_ features: UInt64) -> Bool {
        features & ~offeredFeatures == 0 && features & VirtioFeature.version1 != 0
    }

    /// Builds the ready queues; a queue the guest set up wrongly marks the device NEEDS_RESET.
    private func activateLocked() -> Bool {
        negotiated = driverFeatures
        let indirect = negotiated & VirtioFeature.ringIndirectDescriptors != 0
        let eventIndex = negotiated & VirtioFeature.ringEventIndex != 0
        for index in 0..<queueCount where queueReady[index] {
            do {
                queues[index] = try Virtqueue(queueConfigs[index], maxSize: device.queueSizes[index], indirect: indirect,
                                              eventIndex: eventIndex, memory: memory)
            } catch {
                queues = [Virtqueue?](repeating: nil, count: queueCount)
                needsResetLocked("queue \(index): \(error.reason)")
                return false
            }
        }
        device.activate(features: negotiated)
        return true
    }

    /// Back to the power-on state (§2.4): every queue unset, features and status cleared.
    private func resetLocked() {
        device.reset()
        status = 0
        deviceFeaturesSelect = 0
        driverFeaturesSelect = 0
        driverFeatures = 0
        negotiated = 0
        queueSelect = 0
        for index in 0..<queueCount {
            queueConfigs[index] = QueueConfig()
            queueReady[index] = false
            queues[index] = nil
        }
        interruptStatus.store(0, ordering: .releasing)
    }

    /// Called with both locks held.
    private func needsResetLocked(_ reason: String) {
        status |= VirtioStatus.deviceNeedsReset
        lastError = reason
        needsResetEvents.wrappingAdd(1, ordering: .relaxed)
        GuestWarnings.shared.warnOnce(.virtioNeedsReset, "\(VirtioDeviceID.name(device.deviceID)) gave up on a malformed queue "
            + "(\(reason)) and asks its driver for a reset (DEVICE_NEEDS_RESET)")
        interruptStatus.bitwiseOr(VIRTIO_MMIO_INT_CONFIG, ordering: .acquiringAndReleasing)
        interrupt.trigger()
    }

    private func refuse() { refusedWrites.wrappingAdd(1, ordering: .relaxed) }

    // MARK: device side (I/O thread, API thread)

    /// Lets the device work on queue `index` if the driver has it running; raises the
    /// used-buffer interrupt when the queue asks for one.
    public func processQueue(_ index: Int) {
        processing.withLock {
            guard index >= 0, index < queueCount, queues[index] != nil else { return }
            let progress: QueueProgress
            do throws(VirtqueueError) {
                progress = try device.process(queue: index, &queues[index]!, memory: memory)
            } catch {
                queues = [Virtqueue?](repeating: nil, count: queueCount)
                registers.withLock { needsResetLocked("queue \(index): \(error.reason)") }
                return
            }
            if queues[index]!.needsInterrupt() {
                interruptStatus.bitwiseOr(VIRTIO_MMIO_INT_VRING, ordering: .acquiringAndReleasing)
                interrupt.trigger()
            }
            // More chains (the device's per-call budget ran out, or the driver added some
            // meanwhile): come back through the notifier, after other queues' turns.
            switch progress {
            case .done: if queues[index]!.prepareToWait() { notify(index) }
            case .needsMoreBuffers: if queues[index]!.prepareToWaitForMore() { notify(index) }
            case .waitingOnHost: break
            }
        }
    }

    /// Changes the device's configuration with its queues quiet (media change), then tells
    /// the driver: a new config generation and a configuration-change interrupt.
    @discardableResult
    public func changeConfiguration<Result>(_ change: () -> Result) -> Result {
        let result = processing.withLock {
            registers.withLock {
                configGeneration &+= 1
                return change()
            }
        }
        interruptStatus.bitwiseOr(VIRTIO_MMIO_INT_CONFIG, ordering: .acquiringAndReleasing)
        interrupt.trigger()
        return result
    }
}

private func low(_ old: UInt64, _ value: UInt32) -> UInt64 { (old & 0xFFFF_FFFF_0000_0000) | UInt64(value) }
private func high(_ old: UInt64, _ value: UInt32) -> UInt64 { (old & 0xFFFF_FFFF) | UInt64(value) << 32 }
