// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Tributary",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tributary", targets: ["tributary"]),
        .library(name: "SyncCore", targets: ["SyncCore"]),
        .library(name: "SyncStore", targets: ["SyncStore"]),
        .library(name: "SyncConnectors", targets: ["SyncConnectors"]),
        .library(name: "SyncEngine", targets: ["SyncEngine"]),
        .library(name: "SyncServer", targets: ["SyncServer"]),
        .library(name: "SyncNode", targets: ["SyncNode"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // The HTTP codec types the server's connection guard sits among (already in Hummingbird's graph).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // Metrics: recorded through swift-metrics, exported by swift-prometheus at GET /metrics.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // HMAC-SHA256 of webhook signatures (already in the graph through AsyncHTTPClient's TLS stack).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // The dashboard's server-rendered pages (Hummingbird's own template engine).
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // The system zlib: response bodies are inflated by Tributary itself (every gzip member,
        // deflate with or without its zlib wrapper, nothing after the end).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(
            name: "SyncCore",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        .target(
            name: "SyncStore",
            dependencies: [
                "SyncCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                // AES-GCM of secrets at rest (docs/credentials.md, "Secrets at rest").
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SyncConnectors",
            dependencies: [
                "SyncCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                "CZlib",
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SyncEngine",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SyncServer",
            dependencies: [
                // Not the engine: the routes reach the workers only through the store's events.
                "SyncCore", "SyncStore", "SyncConnectors",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                // The HTTP/1 codec Hummingbird installs: the keep-alive rule sits just before it.
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Mustache", package: "swift-mustache"),
                // Configured tokens given as their SHA-256.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.copy("Resources/openapi.yaml"), .copy("Resources/dashboard")],
            swiftSettings: strict
        ),
        .target(
            name: "SyncNode",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors", "SyncEngine", "SyncServer",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tributary",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors", "SyncEngine", "SyncServer", "SyncNode",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tributary-bench",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors", "SyncEngine", "SyncServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/tributary-bench",
            swiftSettings: strict
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors", "SyncEngine", "SyncServer", "SyncNode",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "SyncCoreTests", dependencies: ["SyncCore"], swiftSettings: strict),
        .testTarget(name: "SyncConnectorsTests", dependencies: ["SyncCore", "SyncConnectors", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SyncStoreTests",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SyncEngineTests",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors", "SyncEngine", "SyncServer", "SyncNode", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SyncServerTests",
            dependencies: [
                "SyncCore", "SyncStore", "SyncConnectors", "SyncEngine", "SyncServer", "TestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "SyncCore", "SyncConnectors", "SyncServer", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
