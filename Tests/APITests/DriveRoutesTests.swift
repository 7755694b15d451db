import XCTest
@testable import API
import SwiftletCore

/// PUT/PATCH /drives/{drive_id} and PUT /entropy, with Firecracker's field names.
final class DriveRoutesTests: XCTestCase {
    func routed(_ text: String, state: InstanceState = .notStarted) -> APIAction? {
        if case .success(let action) = route(text, state: state) { return action }
        return nil
    }

    func message(_ text: String, state: InstanceState = .notStarted) -> (Int, String)? {
        if case .failure(let error) = route(text, state: state) { return (error.status, error.message) }
        return nil
    }

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
        XCTAssertEqual(routed(httpRequest("PATCH", "/drives/scratch", body), state: .running), .changeMedia(driveID: "scratch", path: "/new.img"))
        XCTAssertEqual(message(httpRequest("PATCH", "/drives/scratch", body))?.0, 400)
        XCTAssertEqual(message(httpRequest("PATCH", "/drives/scratch", #"{"drive_id": "scratch", "is_read_only": true}"#), state: .running)?.0, 400)
    }

    func testEntropy() {
        XCTAssertEqual(routed(httpRequest("PUT", "/entropy", "{}")), .configureEntropy)
        XCTAssertEqual(routed(httpRequest("PUT", "/entropy", #"{"rate_limiter": null}"#)), .configureEntropy)
        XCTAssertEqual(message(httpRequest("PUT", "/entropy", #"{"device": 1}"#))?.0, 400)
        XCTAssertEqual(message(httpRequest("PUT", "/entropy", "{}"), state: .running)?.0, 400)
    }

    func testConfigShowsDrivesAndEntropy() throws {
        var config = VMConfig()
        var root = DiskConfig(id: "rootfs", path: "/r.img")
        root.isRootDevice = true
        config.setDisk(root)
        config.setDisk(DiskConfig(id: "data", path: "/d.img", readOnly: true))
        config.entropy = true
        let json = APIRouter.vmConfig(config).serialized()
        XCTAssertTrue(json.contains(#""drives":[{"drive_id":"rootfs","path_on_host":"/r.img","is_root_device":true,"is_read_only":false,"cache_type":"Unsafe","io_engine":"Sync"},{"drive_id":"data","path_on_host":"/d.img","is_root_device":false,"is_read_only":true,"cache_type":"Unsafe","io_engine":"Sync"}]"#), json)
        XCTAssertTrue(json.hasSuffix(#""entropy":{}}"#), json)
    }
}
