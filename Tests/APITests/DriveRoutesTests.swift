import XCTest
@testable import API
import SwiftletCore

/// PUT/PATCH /drives/{drive_id} and PUT /entropy, with Firecracker's field names.
private func routed(_ text: String, state: InstanceState = .notStarted) -> APIAction? {
    if case .success(let action) = route(text, state: state) { return action }
    return nil
}

private func message(_ text: String, state: InstanceState = .notStarted) -> (Int, String)? {
    if case .failure(let error) = route(text, state: state) { return (error.status, error.message) }
    return nil
}

final class DriveRoutesTests: XCTestCase {
    func testPutDrive() {
        let body = #"{"drive_id": "rootfs", "path_on_host": "/img/root.ext4", "is_root_device": true, "is_read_only": false, "cache_type": "Writeback", "partuuid": null}"#
        var expected = DiskConfig(id: "rootfs", path: "/img/root.ext4")
        expected.isRootDevice = true
        expected.cacheType = "Writeback"
        XCTAssertEqual(routed(httpRequest("PUT", "/drives/rootfs", body)), .configureDrive(expected))
        let readOnly = #"{"drive_id": "data_1", "path_on_host": "/d", "is_root_device": false, "is_read_only": true, "io_engine": "Sync"}"#
        XCTAssertEqual(routed(httpRequest("PUT", "/drives/data_1", readOnly)), .configureDrive(DiskConfig(id: "data_1", path: "/d", readOnly: true)))
    }

    func testBadDrivesAre400() {
        let cases: [(String, String)] = [
            (#"{"drive_id": "other", "path_on_host": "/d", "is_root_device": false}"#, "differs from the path"),
            (#"{"drive_id": "x", "is_root_device": false}"#, "missing required field \"path_on_host\""),
            (#"{"drive_id": "x", "path_on_host": "/d"}"#, "missing required field \"is_root_device\""),
            (#"{"drive_id": "x", "path_on_host": "", "is_root_device": false}"#, "must not be empty"),
            (#"{"drive_id": "x", "path_on_host": "/d", "is_root_device": "yes"}"#, "must be a boolean"),
            (#"{"drive_id": "x", "path_on_host": "/d", "is_root_device": false, "cache_type": "Fast"}"#, "cache_type"),
            (#"{"drive_id": "x", "path_on_host": "/d", "is_root_device": false, "io_engine": "Async"}"#, "io_engine"),
            (#"{"drive_id": "x", "path_on_host": "/d", "is_root_device": false, "colour": 1}"#, "unknown field \"colour\""),
        ]
        for (body, expected) in cases {
            let answer = message(httpRequest("PUT", "/drives/x", body))
            XCTAssertEqual(answer?.0, 400, body)
            XCTAssertTrue(answer?.1.contains(expected) == true, "\(body): \(String(describing: answer))")
        }
        XCTAssertEqual(message(httpRequest("PUT", "/drives/a%20b", #"{"drive_id": "a b", "path_on_host": "/d", "is_root_device": false}"#))?.0, 400)
        XCTAssertEqual(message(httpRequest("PUT", "/drives/", "{}"))?.0, 404)
        XCTAssertEqual(message(httpRequest("PUT", "/drives/x/y", "{}"))?.0, 404)
        XCTAssertEqual(message(httpRequest("GET", "/drives/x"))?.0, 405)
        XCTAssertEqual(message(httpRequest("PUT", "/drives/x", #"{"drive_id": "x", "path_on_host": "/d", "is_root_device": false}"#), state: .running)?.0, 400)
    }

    func testPatchDriveAfterStartOnly() {
        let body = #"{"drive_id": "scratch", "path_on_host": "/new.img"}"#
        XCTAssertEqual(routed(httpRequest("PATCH", "/drives/scratch", body), state: .running), .updateDrive(driveID: "scratch", path: "/new.img", rateLimiter: nil))
        XCTAssertEqual(message(httpRequest("PATCH", "/drives/scratch", body))?.0, 400)
        XCTAssertEqual(message(httpRequest("PATCH", "/drives/scratch", #"{"drive_id": "scratch", "is_read_only": true}"#), state: .running)?.0, 400)
    }

    func testEntropy() {
        XCTAssertEqual(routed(httpRequest("PUT", "/entropy", "{}")), .configureEntropy(rateLimiter: nil))
        XCTAssertEqual(routed(httpRequest("PUT", "/entropy", #"{"rate_limiter": null}"#)), .configureEntropy(rateLimiter: nil))
        XCTAssertEqual(routed(httpRequest("PUT", "/entropy", #"{"rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}}"#)),
                       .configureEntropy(rateLimiter: RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1000, refillTimeMs: 100))))
        XCTAssertEqual(message(httpRequest("PUT", "/entropy", #"{"rate_limiter": {"bandwidth": {"size": -1, "refill_time": 100}}}"#))?.0, 400)
        XCTAssertEqual(message(httpRequest("PUT", "/entropy", #"{"device": 1}"#))?.0, 400)
        XCTAssertEqual(message(httpRequest("PUT", "/entropy", "{}"), state: .running)?.0, 400)
    }

    func testConfigShowsDrivesAndEntropy() throws {
        var config = VMConfig()
        var root = DiskConfig(id: "rootfs", path: "/r.img")
        root.isRootDevice = true
        config.setDisk(root)
        var data = DiskConfig(id: "data", path: "/d.img", readOnly: true)
        data.rateLimiter = RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1 << 20, refillTimeMs: 1000))
        config.setDisk(data)
        config.entropy = true
        let json = APIRouter.vmConfig(config).serialized()
        XCTAssertTrue(json.contains(#""drives":[{"drive_id":"rootfs","path_on_host":"/r.img","is_root_device":true,"is_read_only":false,"cache_type":"Unsafe","io_engine":"Sync","rate_limiter":null},{"drive_id":"data","path_on_host":"/d.img","is_root_device":false,"is_read_only":true,"cache_type":"Unsafe","io_engine":"Sync","rate_limiter":{"bandwidth":{"size":1048576,"one_time_burst":null,"refill_time":1000},"ops":null}}]"#), json)
        XCTAssertTrue(json.hasSuffix(#""entropy":{"rate_limiter":null}}"#), json)
    }
}

/// PUT /network-interfaces/{iface_id}, with Firecracker's field names.
final class NetworkInterfaceRoutesTests: XCTestCase {
    func testPutNetworkInterface() {
        let body = #"{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"}"#
        XCTAssertEqual(routed(httpRequest("PUT", "/network-interfaces/eth0", body)),
                       .configureNetworkInterface(NetworkInterfaceConfig(id: "eth0", tapName: "tap0", mac: MACAddress("06:00:ac:10:00:02"))))
        XCTAssertEqual(routed(httpRequest("PUT", "/network-interfaces/eth1", #"{"iface_id": "eth1", "host_dev_name": "tap1", "guest_mac": null}"#)),
                       .configureNetworkInterface(NetworkInterfaceConfig(id: "eth1", tapName: "tap1")))
    }

    func testBadNetworkInterfacesAre400() {
        let cases: [(String, String)] = [
            (#"{"iface_id": "other", "host_dev_name": "tap0"}"#, "differs from the path"),
            (#"{"iface_id": "x"}"#, "missing required field \"host_dev_name\""),
            (#"{"host_dev_name": "tap0"}"#, "missing required field \"iface_id\""),
            (#"{"iface_id": "x", "host_dev_name": ""}"#, "host_dev_name must be a tap name"),
            (#"{"iface_id": "x", "host_dev_name": "sixteen-chars-xx"}"#, "host_dev_name must be a tap name"),
            (#"{"iface_id": "x", "host_dev_name": "tap0", "guest_mac": "ff:ff:ff:ff:ff:ff"}"#, "unicast"),
            (#"{"iface_id": "x", "host_dev_name": "tap0", "guest_mac": 6}"#, "must be a string"),
            (#"{"iface_id": "x", "host_dev_name": "tap0", "mtu": 9000}"#, "unknown field \"mtu\""),
        ]
        for (body, expected) in cases {
            let answer = message(httpRequest("PUT", "/network-interfaces/x", body))
            XCTAssertEqual(answer?.0, 400, body)
            XCTAssertTrue(answer?.1.contains(expected) == true, "\(body): \(String(describing: answer))")
        }
        XCTAssertEqual(message(httpRequest("PUT", "/network-interfaces/", "{}"))?.0, 404)
        XCTAssertEqual(message(httpRequest("GET", "/network-interfaces/x"))?.0, 405)
        XCTAssertEqual(message(httpRequest("PUT", "/network-interfaces/x", #"{"iface_id": "x", "host_dev_name": "tap0"}"#), state: .running)?.0, 400)
    }

    func testConfigShowsNetworkInterfaces() {
        var config = VMConfig()
        config.setNetworkInterface(NetworkInterfaceConfig(id: "eth0", tapName: "tap0", mac: MACAddress("06:00:00:00:00:01")))
        config.setNetworkInterface(NetworkInterfaceConfig(id: "eth1", tapName: "tap1"))
        config.setNetworkInterface(NetworkInterfaceConfig(id: "eth0", tapName: "tap9"))
        let json = APIRouter.vmConfig(config).serialized()
        XCTAssertTrue(json.contains(#""network-interfaces":[{"iface_id":"eth0","host_dev_name":"tap9","rx_rate_limiter":null,"tx_rate_limiter":null},{"iface_id":"eth1","host_dev_name":"tap1","rx_rate_limiter":null,"tx_rate_limiter":null}]"#), json)
    }

    func testRateLimitersOnInterfacesAndTheirPatch() {
        let body = #"{"iface_id": "eth0", "host_dev_name": "tap0", "rx_rate_limiter": {"bandwidth": {"size": 1000000, "refill_time": 100}}, "tx_rate_limiter": {"ops": {"size": 10, "one_time_burst": 5, "refill_time": 1000}}}"#
        var expected = NetworkInterfaceConfig(id: "eth0", tapName: "tap0")
        expected.rxRateLimiter = RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1_000_000, refillTimeMs: 100))
        expected.txRateLimiter = RateLimiterConfig(ops: TokenBucketConfig(size: 10, oneTimeBurst: 5, refillTimeMs: 1000))
        XCTAssertEqual(routed(httpRequest("PUT", "/network-interfaces/eth0", body)), .configureNetworkInterface(expected))
        let patch = #"{"iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {"size": 0, "refill_time": 0}}}"#
        XCTAssertEqual(routed(httpRequest("PATCH", "/network-interfaces/eth0", patch), state: .running),
                       .updateNetworkInterface(id: "eth0", rx: RateLimiterConfig(bandwidth: TokenBucketConfig(size: 0, refillTimeMs: 0)), tx: nil))
        XCTAssertEqual(message(httpRequest("PATCH", "/network-interfaces/eth0", patch))?.0, 400, "PATCH before start")
        XCTAssertEqual(message(httpRequest("PATCH", "/network-interfaces/eth0", #"{"iface_id": "eth0", "host_dev_name": "tap1"}"#), state: .running)?.0, 400)
        XCTAssertEqual(message(httpRequest("PATCH", "/network-interfaces/eth1", patch), state: .running)?.0, 400, "ids differ")
        let drive = #"{"drive_id": "d", "rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}}"#
        XCTAssertEqual(routed(httpRequest("PATCH", "/drives/d", drive), state: .running),
                       .updateDrive(driveID: "d", path: nil, rateLimiter: RateLimiterConfig(ops: TokenBucketConfig(size: 100, refillTimeMs: 1000))))
        XCTAssertEqual(message(httpRequest("PATCH", "/drives/d", #"{"drive_id": "d"}"#), state: .running)?.0, 400, "names nothing to change")
    }
}

/// PUT /vsock, with Firecracker's field names.
final class VsockRoutesTests: XCTestCase {
    func testPutVsock() {
        XCTAssertEqual(routed(httpRequest("PUT", "/vsock", #"{"guest_cid": 3, "uds_path": "/tmp/v.sock"}"#)),
                       .configureVsock(VsockConfig(guestCID: 3, udsPath: "/tmp/v.sock")))
        XCTAssertEqual(routed(httpRequest("PUT", "/vsock", #"{"vsock_id": "vsock0", "guest_cid": 4294967294, "uds_path": "v"}"#)),
                       .configureVsock(VsockConfig(guestCID: 4_294_967_294, udsPath: "v")))
    }

    func testBadVsockIs400() {
        let cases: [(String, String)] = [
            (#"{"guest_cid": 2, "uds_path": "/v"}"#, "guest_cid must be between 3"),
            (#"{"guest_cid": -1, "uds_path": "/v"}"#, "guest_cid must be between 3"),
            (#"{"guest_cid": 4294967295, "uds_path": "/v"}"#, "guest_cid must be between 3"),
            (#"{"guest_cid": 3}"#, "missing required field \"uds_path\""),
            (#"{"uds_path": "/v"}"#, "missing required field \"guest_cid\""),
            (#"{"guest_cid": 3, "uds_path": ""}"#, "must not be empty"),
            (#"{"guest_cid": "3", "uds_path": "/v"}"#, "must be an integer"),
            (#"{"guest_cid": 3, "uds_path": "/v", "port": 1}"#, "unknown field \"port\""),
        ]
        for (body, expected) in cases {
            let answer = message(httpRequest("PUT", "/vsock", body))
            XCTAssertEqual(answer?.0, 400, body)
            XCTAssertTrue(answer?.1.contains(expected) == true, "\(body): \(String(describing: answer))")
        }
        XCTAssertTrue(message(httpRequest("PUT", "/vsock", #"{"guest_cid": 3, "uds_path": "/\#(String(repeating: "x", count: 100))"}"#))?.1.contains("at most 96 bytes") == true)
        XCTAssertEqual(message(httpRequest("PUT", "/vsock", #"{"guest_cid": 3, "uds_path": "/v"}"#), state: .running)?.0, 400)
        XCTAssertEqual(message(httpRequest("GET", "/vsock"))?.0, 405)
    }

    func testConfigShowsVsock() {
        var config = VMConfig()
        config.vsock = VsockConfig(guestCID: 7, udsPath: "/run/v.sock")
        XCTAssertTrue(APIRouter.vmConfig(config).serialized().contains(#""vsock":{"guest_cid":7,"uds_path":"/run/v.sock"}"#))
    }
}
