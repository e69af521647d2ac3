// The shared test runner of the Kotlin bindings: a minimal JSON reader, a tiny test runner and
// the `main` that runs every protocol's checks in one JVM. Run by scripts/test-kotlin.sh; the
// first argument is the test-vectors directory. Prints "N passed, N failed" on its last line
// and exits non-zero on any failure.
package org.fleetwire.tests

import java.io.File
import kotlin.system.exitProcess

fun main(args: Array<String>) {
    val dir = File(args.firstOrNull() ?: "test-vectors")
    for ((name, suite) in listOf<kotlin.Pair<String, (File) -> Unit>>(
        "session" to ::sessionTests,
        "transfer" to ::transferTests,
        "codes" to ::codesTests,
        "sensor" to ::sensorTests,
    )) {
        // A suite that dies outside a `test` block (bad vector file) counts as one failure.
        test("$name suite ran to the end") { suite(dir) }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}

// --- a minimal JSON reader (the Kotlin stdlib has none; no extra libraries here) -----------

internal class Json(private val s: String) {
    private var i = 0

    fun parse(): Any? {
        val v = value()
        ws()
        check(i == s.length) { "trailing JSON at $i" }
        return v
    }

    private fun ws() {
        while (i < s.length && s[i].isWhitespace()) i++
    }

    private fun value(): Any? {
        ws()
        return when (val c = s[i]) {
            '{' -> obj()
            '[' -> arr()
            '"' -> str()
            't' -> lit("true", true)
            'f' -> lit("false", false)
            'n' -> lit("null", null)
            else -> if (c == '-' || c.isDigit()) num() else error("unexpected '$c' at $i")
        }
    }

    private fun lit(word: String, v: Any?): Any? {
        check(s.startsWith(word, i)) { "bad literal at $i" }
        i += word.length
        return v
    }

    private fun num(): Any {
        val start = i
        while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
        val t = s.substring(start, i)
        return t.toLongOrNull() ?: t.toDouble()
    }

    private fun str(): String {
        val sb = StringBuilder()
        i++ // opening quote
        while (true) {
            val c = s[i++]
            when (c) {
                '"' -> return sb.toString()
                '\\' -> {
                    when (val e = s[i++]) {
                        'n' -> sb.append('\n')
                        't' -> sb.append('\t')
                        'r' -> sb.append('\r')
                        'b' -> sb.append('\b')
                        'f' -> sb.append('\u000c')
                        'u' -> {
                            sb.append(s.substring(i, i + 4).toInt(16).toChar())
                            i += 4
                        }
                        else -> sb.append(e) // \" \\ \/
                    }
                }
                else -> sb.append(c)
            }
        }
    }

    private fun arr(): List<Any?> {
        val out = mutableListOf<Any?>()
        i++
        ws()
        if (s[i] == ']') { i++; return out }
        while (true) {
            out.add(value())
            ws()
            when (s[i++]) {
                ',' -> continue
                ']' -> return out
                else -> error("expected , or ] at ${i - 1}")
            }
        }
    }

    private fun obj(): Map<String, Any?> {
        val out = linkedMapOf<String, Any?>()
        i++
        ws()
        if (s[i] == '}') { i++; return out }
        while (true) {
            ws()
            val k = str()
            ws()
            check(s[i++] == ':') { "expected : at ${i - 1}" }
            out[k] = value()
            ws()
            when (s[i++]) {
                ',' -> continue
                '}' -> return out
                else -> error("expected , or } at ${i - 1}")
            }
        }
    }
}

@Suppress("UNCHECKED_CAST")
internal fun Any?.obj() = this as Map<String, Any?>
@Suppress("UNCHECKED_CAST")
internal fun Any?.list() = this as List<Any?>

internal fun hex(b: ByteArray) = b.joinToString("") { "%02x".format(it) }
internal fun unhex(s: String) = ByteArray(s.length / 2) { s.substring(2 * it, 2 * it + 2).toInt(16).toByte() }

// --- a tiny test runner ----------------------------------------------------------------------

internal var passed = 0
internal var failed = 0

internal fun test(name: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $name")
    } catch (t: Throwable) {
        failed++
        println("FAIL $name: $t")
    }
}

internal fun expect(cond: Boolean, msg: () -> String) {
    if (!cond) throw AssertionError(msg())
}

internal fun <T> eq(actual: T, expected: T, what: String = "value") =
    expect(actual == expected) { "$what: expected <$expected>, got <$actual>" }

internal inline fun <reified E : Throwable> throws(body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing thrown")
}

