import SwiftletCore

// ARM PrimeCell GPIO (PL061) register map, from the PL061 TRM (ARM DDI 0190).
// GPIODATA spans 0x000-0x3FC: address bits [9:2] mask which lines an access touches.
private let GPIODATA_END: UInt64 = 0x3FC
private let GPIODIR: UInt64 = 0x400
private let GPIOIS: UInt64 = 0x404    // interrupt sense: 1 = level, 0 = edge
private let GPIOIBE: UInt64 = 0x408   // both edges
private let GPIOIEV: UInt64 = 0x40C   // event: 1 = rising edge / high level
private let GPIOIE: UInt64 = 0x410    // interrupt mask (1 = enabled)
private let GPIORIS: UInt64 = 0x414
private let GPIOMIS: UInt64 = 0x418
private let GPIOIC: UInt64 = 0x41C    // interrupt clear (edge interrupts)
private let GPIOAFSEL: UInt64 = 0x420

private let peripheralID: (UInt32, UInt32, UInt32, UInt32) = (0x61, 0x10, 0x04, 0x00)

/// PL061 with eight lines. The host drives input lines (the power key on line 3);
/// the guest's driver configures edge or level interrupts on them.
public final class PL061: BusDevice {
    public static let size: UInt64 = 0x1000

    private let lock = Lock()
    private let irq: any InterruptLine
    private var outputs: UInt8 = 0
    private var inputs: UInt8 = 0
    private var direction: UInt8 = 0
    private var sense: UInt8 = 0
    private var bothEdges: UInt8 = 0
    private var event: UInt8 = 0
    private var enabled: UInt8 = 0
    private var raw: UInt8 = 0
    private var alternate: UInt8 = 0
    private var irqLevel = false

    public init(irq: any InterruptLine = UnconnectedInterruptLine()) { self.irq = irq }

    /// Drives input `line` (0-7) from the host side, raising edge or level interrupts.
    public func setInput(line: Int, high: Bool) {
        guard line >= 0 && line < 8 else { return }
        lock.withLock {
            let bit = UInt8(1) << UInt8(line)
            let old = inputs & bit != 0
            if high { inputs |= bit } else { inputs &= ~bit }
            if old != high && sense & bit == 0 {
                // Edge-sensitive: both edges, or the one IEV selects.
                if bothEdges & bit != 0 || (event & bit != 0) == high { raw |= bit }
            }
            updateLevelInterrupts()
            updateIRQ()
        }
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        let value = lock.withLock { () -> UInt32 in
            switch offset {
            case 0...GPIODATA_END:
                let mask = UInt8(truncatingIfNeeded: offset >> 2)
                return UInt32(lineLevels & mask)
            case GPIODIR: return UInt32(direction)
            case GPIOIS: return UInt32(sense)
            case GPIOIBE: return UInt32(bothEdges)
            case GPIOIEV: return UInt32(event)
            case GPIOIE: return UInt32(enabled)
            case GPIORIS: return UInt32(raw)
            case GPIOMIS: return UInt32(raw & enabled)
            case GPIOAFSEL: return UInt32(alternate)
            default: return primeCellID(offset: offset, peripheral: peripheralID) ?? 0
            }
        }
        store(value, into: data)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        let value = UInt8(truncatingIfNeeded: load(data))
        lock.withLock {
            switch offset {
            case 0...GPIODATA_END:
                // Only output lines selected by the address mask change.
                let mask = UInt8(truncatingIfNeeded: offset >> 2) & direction
                outputs = (outputs & ~mask) | (value & mask)
            case GPIODIR: direction = value
            case GPIOIS: sense = value
            case GPIOIBE: bothEdges = value
            case GPIOIEV: event = value
            case GPIOIE: enabled = value
            case GPIOIC: raw &= ~(value & ~sense)
            case GPIOAFSEL: alternate = value
            default: break
            }
            updateLevelInterrupts()
            updateIRQ()
        }
    }

    /// What GPIODATA reads: outputs on output lines, host inputs on input lines.
    private var lineLevels: UInt8 { (outputs & direction) | (inputs & ~direction) }

    private func updateLevelInterrupts() {
        let levelMatch = ~(lineLevels ^ event)          // line is at the IEV level
        raw = (raw & ~sense) | (levelMatch & sense)
    }

    private func updateIRQ() {
        let level = raw & enabled != 0
        if level != irqLevel {
            irqLevel = level
            irq.setLevel(level)
        }
    }
}
