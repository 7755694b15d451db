import Devices
import FuzzKit
import SwiftletCore

// Every legacy device model driven by a decoded sequence of guest register accesses, host
// console input, GPIO input, Ctrl-Alt-Del and wall-clock changes. Devices must tolerate any
// offset, width and value (BusDevice's contract): a trap is a bug.
//
// Input: a sequence of operations, each starting with an op byte:
//   op % 8 in 0...3  access: device byte (% 8: PL011, PL031, PL061, 16550, i8042, CMOS,
//                    ACPI sleep control, boot timer),
//                    flags byte (bits 0-2: width - 1, bit 3: write, bits 4-7: offset kind),
//                    offset bytes, then for a write `width` value bytes (little-endian)
//   op % 8 == 4      console input: length byte and bytes, to PL011 (op bit 3 clear) or 16550
//   op % 8 == 5      PL061.setInput: line byte (signed, mostly 0...7), level = op bit 3
//   op % 8 == 6      I8042.sendCtrlAltDel(pressed: op bit 3)
//   op % 8 == 7      the host clock jumps: the next `now()` of PL031 and CMOS returns a
//                    fuzzer-chosen UInt64 (tiny, huge, Int64 edges or raw)

final class Sink: ConsoleSink {
    var count = 0
    func write(_ byte: UInt8) { count &+= 1 }
}

final class Line: InterruptLine {
    var level = false
    var changes = 0
    func setLevel(_ high: Bool) {
        if high != level { changes &+= 1 }
        level = high
    }
}

final class Reset: ResetLine, PowerOffLine {
    var count = 0
    func reset() { count &+= 1 }
    func powerOff() { count &+= 1 }
}

final class Clock {
    var seconds: UInt64 = 1_700_000_000
}

let notifier = try! EventNotifier()

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    notifier.drain()
    let clock = Clock()
    let sink = Sink()
    let pl011 = PL011(output: sink, irq: Line(), spaceNotifier: notifier)
    let pl031 = PL031(irq: Line(), now: { clock.seconds })
    let pl061 = PL061(irq: Line())
    let uart = Serial16550(output: sink, irq: Line(), spaceNotifier: notifier)
    let reset = Reset()
    let i8042 = I8042(resetLine: reset, irq: Line())
    let cmos = CMOS(now: { clock.seconds })
    var signals = 0
    let bootTimer = BootTimer(origin: .init(monotonicMicroseconds: 1_000, cpuMicroseconds: 0),
                              clock: { .init(monotonicNanoseconds: clock.seconds, cpuNanoseconds: clock.seconds / 3) },
                              signal: { signals += 1 })
    let devices: [(device: any BusDevice, size: UInt64)] = [
        (pl011, PL011.size), (pl031, PL031.size), (pl061, PL061.size),
        (uart, Serial16550.size), (i8042, I8042.size), (cmos, CMOS.size),
        (ACPISleepControl(powerOff: reset), ACPISleepControl.size),
        (bootTimer, BootTimer.size),
    ]
    var scratch = [UInt8](repeating: 0, count: 8)

    while !input.isAtEnd {
        let op = input.byte()
        let flag = op & 0x08 != 0
        switch op % 8 {
        case 0...3:
            let (device, size) = devices[Int(input.byte() % UInt8(devices.count))]
            let flags = input.byte()
            let width = Int(flags & 0x07) + 1
            let write = flags & 0x08 != 0
            let offset: UInt64
            switch flags >> 4 {
            case 0...7: offset = UInt64(input.uint16()) % size                      // in the window
            case 8...11: offset = UInt64(input.uint16()) % max(1, size / 4) * 4      // aligned register
            case 12: offset = 0xFE0 + UInt64(input.byte() % 0x20)                     // PrimeCell IDs
            case 13: offset = size &+ UInt64(input.byte())                            // just past the end
            default: offset = input.interestingUInt64()                               // anywhere
            }
            if write {
                let value = input.integer(bytes: width)
                for i in 0..<width { scratch[i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
                scratch.withUnsafeBytes { device.write(offset: offset, data: UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
            } else {
                for i in 0..<8 { scratch[i] = 0xA5 }
                scratch.withUnsafeMutableBytes { device.read(offset: offset, data: UnsafeMutableRawBufferPointer(rebasing: $0[0..<width])) }
            }
        case 4:
            let bytes = input.shortBytes()
            let target: any ConsoleInput = flag ? uart : pl011
            let accepted = bytes.withUnsafeBytes { target.push($0) }
            require(accepted >= 0 && accepted <= bytes.count, "push accepted \(accepted) of \(bytes.count) bytes")
            _ = target.hasSpace
        case 5:
            let raw = input.byte()
            // Mostly a real line; sometimes any Int (negative, huge).
            let line = raw & 0x80 == 0 ? Int(raw & 0x0F) : Int(truncatingIfNeeded: Int64(bitPattern: input.interestingUInt64()))
            pl061.setInput(line: line, high: flag)
        case 6:
            i8042.sendCtrlAltDel(pressed: flag)
        default:
            clock.seconds = input.interestingUInt64()
        }
    }
    // The boot timer is timed at most once, and reported once if it was.
    require(signals <= 1, "the boot timer signalled \(signals) times")
    require((bootTimer.takeReport() != nil) == (signals == 1), "a signal without a report, or the reverse")
    require(bootTimer.takeReport() == nil, "the boot time reported twice")
}
