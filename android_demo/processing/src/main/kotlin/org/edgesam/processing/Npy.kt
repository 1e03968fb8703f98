package org.edgesam.processing

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * A `.npy` array (format versions 1-3, C order, little-endian or byte types): `shape`, numpy
 * `dtype` string (`|u1`, `|b1`, `<f4`, `<f8`, `<i8`, `<i4`) and the raw bytes.
 */
class NpyArray(val shape: IntArray, val dtype: String, private val data: ByteBuffer) {
    val size: Int get() = shape.fold(1) { a, b -> a * b }

    fun toFloats(): FloatArray {
        val out = FloatArray(size)
        when (dtype) {
            "<f4" -> data.asFloatBuffer().get(out)
            "<f8" -> { val d = data.asDoubleBuffer(); for (i in 0 until size) out[i] = d.get(i).toFloat() }
            else -> { val ints = toInts(); for (i in 0 until size) out[i] = ints[i].toFloat() }
        }
        return out
    }

    fun toInts(): IntArray {
        val out = IntArray(size)
        when (dtype) {
            "|u1", "|b1" -> for (i in 0 until size) out[i] = data.get(i).toInt() and 0xFF
            "<i4" -> data.asIntBuffer().get(out)
            "<i8" -> { val d = data.asLongBuffer(); for (i in 0 until size) out[i] = d.get(i).toInt() }
            else -> throw IllegalArgumentException("cannot read dtype $dtype as integers")
        }
        return out
    }

    companion object {
        private val DESCR = Regex("'descr':\\s*'([^']+)'")
        private val ORDER = Regex("'fortran_order':\\s*(True|False)")
        private val SHAPE = Regex("'shape':\\s*\\(([^)]*)\\)")

        fun read(file: File): NpyArray {
            val bytes = file.readBytes()
            if (bytes.size < 10 || bytes[0] != 0x93.toByte() || String(bytes, 1, 5, Charsets.US_ASCII) != "NUMPY") {
                throw IllegalArgumentException("$file is not a .npy file")
            }
            val major = bytes[6].toInt()
            val buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
            val headerLen = if (major == 1) buf.getShort(8).toInt() and 0xFFFF else buf.getInt(8)
            val start = if (major == 1) 10 else 12
            val header = String(bytes, start, headerLen, Charsets.ISO_8859_1)
            val descr = DESCR.find(header)?.groupValues?.get(1) ?: throw IllegalArgumentException("$file: no descr")
            if (ORDER.find(header)?.groupValues?.get(1) == "True") throw IllegalArgumentException("$file: Fortran order")
            val dims = SHAPE.find(header)!!.groupValues[1].split(",").map { it.trim() }.filter { it.isNotEmpty() }
            val shape = dims.map { it.toInt() }.toIntArray()
            val body = ByteBuffer.wrap(bytes, start + headerLen, bytes.size - start - headerLen).slice()
                .order(ByteOrder.LITTLE_ENDIAN)
            return NpyArray(shape, descr, body)
        }
    }
}
