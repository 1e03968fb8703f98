package org.edgesam.processing

import kotlin.math.abs
import kotlin.math.ceil
import kotlin.math.floor
import kotlin.math.max
import kotlin.math.min

/**
 * Resampling rules, mirroring `edge_sam_sdk/resize.py`: for each output pixel along one
 * axis, the input indices it reads and their weights (`Taps`).
 *
 * `pil_bilinear`, `pil_bicubic`: Pillow's `Image.resize` on uint8, bit for bit (fixed-point
 * weights, two passes). `torch_bilinear`, `torch_bicubic`: `F.interpolate(align_corners=False)`.
 * `torch_bilinear_aa`: the same with antialiasing (torchvision `Resize`).
 */
class Taps(val outSize: Int, val count: Int, val index: IntArray, val weight: DoubleArray)

object Resize {
    private const val PRECISION_BITS = 32 - 8 - 2
    val RULES = listOf("pil_bilinear", "pil_bicubic", "torch_bilinear", "torch_bilinear_aa", "torch_bicubic")

    private fun triangle(x: Double): Double { val a = abs(x); return if (a < 1.0) 1.0 - a else 0.0 }

    private fun cubic(x: Double, a: Double): Double {
        val t = abs(x)
        return when {
            t < 1.0 -> ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
            t < 2.0 -> ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
            else -> 0.0
        }
    }

    private fun supportTaps(inSize: Int, outSize: Int, support0: Double, filt: (Double) -> Double): Taps {
        val scale = inSize.toDouble() / outSize
        val filterscale = max(scale, 1.0)
        val support = support0 * filterscale
        val n = ceil(support).toInt() * 2 + 1
        val index = IntArray(outSize * n)
        val weight = DoubleArray(outSize * n)
        for (o in 0 until outSize) {
            val center = (o + 0.5) * scale
            val xmin = max((center - support + 0.5).toLong(), 0L).toInt()
            val xsize = min((center + support + 0.5).toLong(), inSize.toLong()).toInt() - xmin
            var total = 0.0
            for (j in 0 until n) {
                val w = if (j < xsize) filt((j + xmin - center + 0.5) / filterscale) else 0.0
                weight[o * n + j] = w
                total += w
                index[o * n + j] = min(xmin + j, inSize - 1)
            }
            for (j in 0 until n) weight[o * n + j] = if (total != 0.0) weight[o * n + j] / total else 0.0
        }
        return Taps(outSize, n, index, weight)
    }

    private fun torchTaps(inSize: Int, outSize: Int, bicubic: Boolean): Taps {
        val scale = inSize.toDouble() / outSize
        val n = if (bicubic) 4 else 2
        val index = IntArray(outSize * n)
        val weight = DoubleArray(outSize * n)
        for (o in 0 until outSize) {
            var src = (o + 0.5) * scale - 0.5
            if (!bicubic) {
                src = max(src, 0.0)
                val i0 = min(floor(src).toInt(), inSize - 1)
                val frac = src - i0
                index[o * 2] = i0
                index[o * 2 + 1] = min(i0 + 1, inSize - 1)
                weight[o * 2] = 1.0 - frac
                weight[o * 2 + 1] = frac
            } else {
                val i0 = floor(src).toInt()
                val t = src - i0
                for (k in 0 until 4) {
                    index[o * 4 + k] = min(max(i0 + k - 1, 0), inSize - 1)
                    weight[o * 4 + k] = cubic(t - (k - 1), -0.75)
                }
            }
        }
        return Taps(outSize, n, index, weight)
    }

    /** Taps of [rule] from [inSize] to [outSize] pixels along one axis. */
    fun taps(inSize: Int, outSize: Int, rule: String): Taps = when (rule) {
        "pil_bilinear", "torch_bilinear_aa" -> supportTaps(inSize, outSize, 1.0) { triangle(it) }
        "pil_bicubic" -> supportTaps(inSize, outSize, 2.0) { cubic(it, -0.5) }
        "torch_bilinear" -> torchTaps(inSize, outSize, false)
        "torch_bicubic" -> torchTaps(inSize, outSize, true)
        else -> throw IllegalArgumentException("unknown resampling rule '$rule'; known: $RULES")
    }

    /** The `outSize x inSize` matrix of [rule], row-major. */
    fun matrix(inSize: Int, outSize: Int, rule: String): DoubleArray {
        val t = taps(inSize, outSize, rule)
        val m = DoubleArray(outSize * inSize)
        for (o in 0 until outSize) for (j in 0 until t.count) m[o * inSize + t.index[o * t.count + j]] += t.weight[o * t.count + j]
        return m
    }

    /**
     * Resize an `HxWx3` image (row-major, values 0..255) to `outH x outW` with [rule].
     * `pil_*` rules return uint8 values exactly as Pillow; `torch_*` rules return the float
     * pixel values torch computes (not rounded).
     */
    fun resizeImage(image: IntArray, h: Int, w: Int, outH: Int, outW: Int, rule: String): DoubleArray {
        if (rule.startsWith("pil_")) {
            val verticalFirst = (h - outH) > 0 && (h - outH) > (w - outW) * 2
            var cur = image
            var ch = h
            var cw = w
            val axes = if (verticalFirst) intArrayOf(0, 1) else intArrayOf(1, 0)
            for (axis in axes) {
                if (axis == 0 && ch != outH) { cur = pilAxis(cur, ch, cw, outH, 0, rule); ch = outH }
                if (axis == 1 && cw != outW) { cur = pilAxis(cur, ch, cw, outW, 1, rule); cw = outW }
            }
            return DoubleArray(cur.size) { cur[it].toDouble() }
        }
        var cur = DoubleArray(image.size) { image[it].toDouble() }
        var ch = h
        var cw = w
        if (ch != outH) { cur = floatAxis(cur, ch, cw, outH, 0, rule); ch = outH }
        if (cw != outW) cur = floatAxis(cur, ch, cw, outW, 1, rule)
        return cur
    }

    private fun pilAxis(img: IntArray, h: Int, w: Int, outSize: Int, axis: Int, rule: String): IntArray {
        val t = taps(if (axis == 0) h else w, outSize, rule)
        val fixed = LongArray(t.weight.size) {
            val wt = t.weight[it]
            (wt * (1L shl PRECISION_BITS) + (if (wt < 0) -0.5 else 0.5)).toLong()
        }
        val oh = if (axis == 0) outSize else h
        val ow = if (axis == 1) outSize else w
        val out = IntArray(oh * ow * 3)
        for (y in 0 until oh) for (x in 0 until ow) for (c in 0 until 3) {
            val o = if (axis == 0) y else x
            var acc = 1L shl (PRECISION_BITS - 1)
            for (j in 0 until t.count) {
                val i = t.index[o * t.count + j]
                val src = if (axis == 0) img[(i * w + x) * 3 + c] else img[(y * w + i) * 3 + c]
                acc += src.toLong() * fixed[o * t.count + j]
            }
            out[(y * ow + x) * 3 + c] = min(max((acc shr PRECISION_BITS).toInt(), 0), 255)
        }
        return out
    }

    private fun floatAxis(img: DoubleArray, h: Int, w: Int, outSize: Int, axis: Int, rule: String): DoubleArray {
        val t = taps(if (axis == 0) h else w, outSize, rule)
        val oh = if (axis == 0) outSize else h
        val ow = if (axis == 1) outSize else w
        val out = DoubleArray(oh * ow * 3)
        for (y in 0 until oh) for (x in 0 until ow) for (c in 0 until 3) {
            val o = if (axis == 0) y else x
            var acc = 0.0
            for (j in 0 until t.count) {
                val i = t.index[o * t.count + j]
                acc += (if (axis == 0) img[(i * w + x) * 3 + c] else img[(y * w + i) * 3 + c]) * t.weight[o * t.count + j]
            }
            out[(y * ow + x) * 3 + c] = acc
        }
        return out
    }
}
