// swift-tools-version:6.0
// EdgeSamKit: edgesam's pre/post-processing in Swift (Foundation only), mirroring
// edge_sam_sdk/processing.py; EdgeSamCoreML: a Core ML runner for `--target coreml` bundles
// (compiles to an empty module where Core ML is missing, e.g. Linux).
import PackageDescription

let package = Package(
    name: "EdgeSamKit",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "EdgeSamKit", targets: ["EdgeSamKit"]),
        .library(name: "EdgeSamCoreML", targets: ["EdgeSamCoreML"]),
    ],
    targets: [
        .target(name: "EdgeSamKit"),
        .target(name: "EdgeSamCoreML", dependencies: ["EdgeSamKit"]),
        .testTarget(name: "EdgeSamKitTests", dependencies: ["EdgeSamKit"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
