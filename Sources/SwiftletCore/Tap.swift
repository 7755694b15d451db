import CLinux

/// A tap interface the operator created (`ip tuntap add NAME mode tap`), attached with
/// IFF_TAP | IFF_NO_PI | IFF_VNET_HDR: each read or write is one Ethernet frame behind a
/// 12-byte virtio_net_hdr_v1, the layout virtio-net uses, so frames pass between the tap
/// and guest memory without being reshaped. The descriptor is non-blocking.
public final class Tap {
    public let name: String
    public let fd: Int32
    /// The interface's MTU when it was opened.
    public let mtu: Int

    /// TUNSETOFFLOAD bits (linux/if_tun.h): what the tap may hand us unfinished.
    public static let offloadChecksum = UInt32(TUN_F_CSUM)
    public static let offloadTSO4 = UInt32(TUN_F_TSO4)
    public static let offloadTSO6 = UInt32(TUN_F_TSO6)
    public static let offloadTSOECN = UInt32(TUN_F_TSO_ECN)

    private init(name: String, fd: Int32, mtu: Int) {
        self.name = name
        self.fd = fd
        self.mtu = mtu
    }

    deinit { close(fd) }

    /// Attaches to tap `name`. A missing, wrong or busy interface is the user's mistake.
    public static func open(_ name: String) throws(SwiftletError) -> Tap {
        guard !name.isEmpty, name.utf8.count < Int(SL_IFNAMSIZ), !name.utf8.contains(0x2F), !name.utf8.contains(0) else {
            throw .invalidArgument("tap name '\(name)' must be 1 to \(Int(SL_IFNAMSIZ) - 1) characters without '/'")
        }
        let fd = sl_tap_open(name)
        guard fd >= 0 else {
            switch -fd {
            case ENODEV: throw .invalidArgument("no network interface '\(name)': create the tap first (ip tuntap add \(name) mode tap)")
            case EINVAL: throw .invalidArgument("network interface '\(name)' is not a single-queue tap")
            case EBUSY: throw .invalidArgument("tap '\(name)' is in use by another process")
            case EPERM, EACCES: throw .invalidArgument("no permission to attach to tap '\(name)' (its owner or group must allow this user, or run with CAP_NET_ADMIN)")
            case ENOENT: throw .unsupported("/dev/net/tun is missing (load the tun module)")
            default: throw .system("attaching to tap '\(name)'", errno: -fd)
            }
        }
        let mtu = sl_interface_mtu(name)
        return Tap(name: name, fd: fd, mtu: mtu > 0 ? Int(mtu) : 1500)
    }

    /// Tells the tap which offloads the guest accepts (TUNSETOFFLOAD); false if refused.
    @discardableResult
    public func setOffloads(_ flags: UInt32) -> Bool {
        sl_ioctl_value(fd, SL_TUNSETOFFLOAD, UInt(flags)) == 0
    }
}
