import SwiftUI

@main
struct EdgeSamDemoApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
        }
    }
}
