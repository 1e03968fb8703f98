import SwiftUI
import UIKit

/// The photo fitted into the available space with the mask overlay, the clicks and the box on
/// top. A touch in point mode reports its image-pixel position; a drag in box mode, its box.
struct PhotoCanvas: View {
    let photo: UIImage
    let pixelWidth: Int
    let pixelHeight: Int
    let overlay: CGImage?
    let clicks: [Click]
    let box: CGRect?
    let mode: PromptMode
    let onTap: (CGPoint) -> Void
    let onBox: (CGRect) -> Void
    @State private var dragging: CGRect?

    var body: some View {
        GeometryReader { geo in
            let fit = Self.fit(CGSize(width: pixelWidth, height: pixelHeight), in: geo.size)
            let k = fit.width / CGFloat(pixelWidth)  // view points per image pixel
            ZStack {
                Image(uiImage: photo)
                    .resizable()
                    .frame(width: fit.width, height: fit.height)
                    .position(x: fit.midX, y: fit.midY)
                if let overlay {
                    Image(decorative: overlay, scale: 1)
                        .resizable()
                        .interpolation(.none)
                        .frame(width: fit.width, height: fit.height)
                        .position(x: fit.midX, y: fit.midY)
                }
                ForEach(clicks) { c in
                    Circle()
                        .fill(c.positive ? Color.green : Color.red)
                        .overlay(Circle().stroke(.white, lineWidth: 2))
                        .frame(width: 14, height: 14)
                        .position(x: fit.minX + c.x * k, y: fit.minY + c.y * k)
                }
                if let r = dragging ?? box.map({ CGRect(x: fit.minX + $0.minX * k, y: fit.minY + $0.minY * k,
                                                        width: $0.width * k, height: $0.height * k) }) {
                    Rectangle()
                        .stroke(.yellow, lineWidth: 2)
                        .frame(width: r.width, height: r.height)
                        .position(x: r.midX, y: r.midY)
                }
            }
            .contentShape(Rectangle())
            .gesture(
                DragGesture(minimumDistance: 0)
                    .onChanged { v in
                        if mode == .box { dragging = Self.rect(v.startLocation, v.location) }
                    }
                    .onEnded { v in
                        let toImage = { (p: CGPoint) in
                            CGPoint(x: min(max((p.x - fit.minX) / k, 0), CGFloat(pixelWidth)),
                                    y: min(max((p.y - fit.minY) / k, 0), CGFloat(pixelHeight)))
                        }
                        if mode == .box {
                            dragging = nil
                            let r = Self.rect(toImage(v.startLocation), toImage(v.location))
                            if r.width >= 4 && r.height >= 4 { onBox(r) }
                        } else if fit.contains(v.location) {
                            onTap(toImage(v.location))
                        }
                    }
            )
        }
    }

    static func rect(_ a: CGPoint, _ b: CGPoint) -> CGRect {
        CGRect(x: min(a.x, b.x), y: min(a.y, b.y), width: abs(a.x - b.x), height: abs(a.y - b.y))
    }

    /// `size` scaled to fit `bounds` (aspect kept), centred.
    static func fit(_ size: CGSize, in bounds: CGSize) -> CGRect {
        let s = min(bounds.width / size.width, bounds.height / size.height)
        let w = size.width * s
        let h = size.height * s
        return CGRect(x: (bounds.width - w) / 2, y: (bounds.height - h) / 2, width: w, height: h)
    }
}
