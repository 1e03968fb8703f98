package org.edgesam.processing

/**
 * A small JSON reader (objects -> Map, arrays -> List, numbers -> Double, strings, booleans,
 * null), enough for `manifest.json` and the test vectors' `index.json`, with no dependency.
 */
object Json {
    fun parse(text: String): Any? {
        val p = Parser(text)
        val value = p.value()
        p.skipSpace()
        if (p.pos != text.length) throw IllegalArgumentException("trailing characters at ${p.pos}")
        return value
    }

    private class Parser(val s: String) {
        var pos = 0

        fun skipSpace() {
            while (pos < s.length && s[pos].isWhitespace()) pos++
        }

        fun value(): Any? {
            skipSpace()
            if (pos >= s.length) throw IllegalArgumentException("unexpected end of JSON")
            val c = s[pos]
            return when {
                c == '{' -> obj()
                c == '[' -> arr()
                c == '"' -> str()
                s.startsWith("true", pos) -> { pos += 4; true }
                s.startsWith("false", pos) -> { pos += 5; false }
                s.startsWith("null", pos) -> { pos += 4; null }
                s.startsWith("NaN", pos) -> { pos += 3; Double.NaN }
                else -> num()
            }
        }

        fun obj(): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (s[pos] == '}') { pos++; return out }
            while (true) {
                skipSpace()
                val key = str()
                skipSpace()
                expect(':')
                out[key] = value()
                skipSpace()
                if (s[pos] == ',') { pos++; continue }
                expect('}')
                return out
            }
        }

        fun arr(): List<Any?> {
            val out = ArrayList<Any?>()
            pos++
            skipSpace()
            if (s[pos] == ']') { pos++; return out }
            while (true) {
                out.add(value())
                skipSpace()
                if (s[pos] == ',') { pos++; continue }
                expect(']')
                return out
            }
        }

        fun str(): String {
            expect('"')
            val sb = StringBuilder()
            while (s[pos] != '"') {
                var c = s[pos++]
                if (c == '\\') {
                    c = s[pos++]
                    when (c) {
                        'n' -> sb.append('\n')
                        't' -> sb.append('\t')
                        'r' -> sb.append('\r')
                        'b' -> sb.append('\b')
                        'f' -> sb.append('\u000C')
                        'u' -> { sb.append(s.substring(pos, pos + 4).toInt(16).toChar()); pos += 4 }
                        else -> sb.append(c)
                    }
                } else {
                    sb.append(c)
                }
            }
            pos++
            return sb.toString()
        }

        fun num(): Double {
            val start = pos
            while (pos < s.length && (s[pos].isDigit() || s[pos] in "+-.eE" || s[pos].isLetter())) pos++
            val text = s.substring(start, pos)
            return when (text) {
                "Infinity" -> Double.POSITIVE_INFINITY
                "-Infinity" -> Double.NEGATIVE_INFINITY
                else -> text.toDoubleOrNull() ?: throw IllegalArgumentException("bad number '$text' at $start")
            }
        }

        fun expect(c: Char) {
            if (pos >= s.length || s[pos] != c) throw IllegalArgumentException("expected '$c' at $pos")
            pos++
        }
    }
}

@Suppress("UNCHECKED_CAST")
fun Any?.asMap(): Map<String, Any?> = this as Map<String, Any?>

@Suppress("UNCHECKED_CAST")
fun Any?.asList(): List<Any?> = this as List<Any?>

fun Any?.asDouble(): Double = (this as Number).toDouble()

fun Any?.asInt(): Int = (this as Number).toInt()

fun Any?.asDoubles(): DoubleArray = this.asList().map { it.asDouble() }.toDoubleArray()
