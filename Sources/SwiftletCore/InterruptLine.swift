/// A level-triggered interrupt input of the guest's interrupt controller, as a device sees
/// it. Implementations call KVM (KVM_IRQ_LINE) and must not allocate.
public protocol InterruptLine: AnyObject {
    func setLevel(_ high: Bool)
}

/// For devices built without a wired interrupt (unit tests, polled use).
public final class UnconnectedInterruptLine: InterruptLine {
    public private(set) var level = false
    public private(set) var changes = 0
    public init() {}
    public func setLevel(_ high: Bool) {
        if high != level { changes += 1 }
        level = high
    }
}

/// An edge-triggered interrupt a device raises once per event (virtio's used-buffer and
/// configuration-change notices). The VMM backs it with a KVM irqfd where KVM has one, so
/// raising it from an I/O thread is one eventfd write and no ioctl.
public protocol EdgeInterrupt: AnyObject {
    func trigger()
}

/// Counts edges, for devices built without a wired interrupt (unit tests).
public final class CountingEdgeInterrupt: EdgeInterrupt {
    public private(set) var count = 0
    public init() {}
    public func trigger() { count += 1 }
}
