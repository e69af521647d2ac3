// fleetwire.codes through the Kotlin bindings: test-vectors/codes.json (check characters,
// parsing as typed, invalid inputs with their error) and a typo rejected.
package org.fleetwire.tests

import java.io.File
import org.fleetwire.*

internal fun codesTests(dir: File) {
    val v = Json(File(dir, "codes.json").readText()).parse().obj()
    val specs = v["specs"].obj().mapValues { (_, s) ->
        val o = s.obj()
        CodeSpec(o["alphabet"] as String, (o["length"] as Long).toUInt(), o["check"] as Boolean)
    }

    test("codes vector specs build") {
        for ((name, s) in v["specs"].obj()) {
            val o = s.obj()
            val spec = specs.getValue(name)
            eq(spec.alphabet(), o["alphabet"] as String, "$name alphabet")
            eq(spec.length().toLong(), o["length"] as Long, "$name length")
            eq(spec.hasCheck(), o["check"] as Boolean, "$name check")
            eq(spec.codeLen(), spec.length() + if (spec.hasCheck()) 1u else 0u, "$name code length")
        }
    }

    for (c in v["check"].list().map { it.obj() }) {
        test("codes vector check: ${c["spec"]} ${c["body"]}") {
            val spec = specs.getValue(c["spec"] as String)
            eq(spec.checkCharacter(c["body"] as String), c["check"] as String, "check character")
            val code = spec.parse(c["code"] as String)
            eq(code, ThingCode(c["code"] as String, c["display"] as String), "parsed")
        }
    }

    for (p in v["parse"].list().map { it.obj() }) {
        test("codes vector parse: ${p["spec"]} '${p["input"]}'") {
            val code = specs.getValue(p["spec"] as String).parse(p["input"] as String)
            eq(code.canonical, p["canonical"] as String, "canonical")
            eq(code.display, p["display"] as String, "display")
            // The display form reads back to the same code.
            eq(specs.getValue(p["spec"] as String).parse(code.display), code, "display round trip")
        }
    }

    for (i in v["invalid"].list().map { it.obj() }) {
        test("codes vector invalid: ${i["spec"]} '${i["input"]}' is ${i["error"]}") {
            val spec = specs.getValue(i["spec"] as String)
            val e = throws<CodesException> { spec.parse(i["input"] as String) }
            eq(e::class.simpleName, i["error"] as String, "error class")
            val input = i["input"] as String
            val expected = when (i["error"]) {
                "Empty" -> "no code was entered"
                "TooLong" -> "input longer than 64 characters cannot be a code"
                "InvalidCharacter" -> {
                    val pos = (i["position"] as Long).toInt()
                    val ch = input.codePoints().toArray()[pos]
                    "character '${String(Character.toChars(ch))}' at position $pos cannot appear in a code"
                }
                "WrongLength" -> "a code has ${i["expected"]} characters, ${i["found"]} were entered"
                "CheckMismatch" -> "this code contains a typo: check the characters and try again"
                else -> error("unknown error ${i["error"]}")
            }
            eq(e.message, expected, "message")
        }
    }

    test("codes: a typo in a typed code is rejected, the right code accepted") {
        val spec = CodeSpec.defaultSpec()
        eq(spec.alphabet(), "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        eq(spec.codeLen(), 11u)
        val good = spec.parse("k7q2 m9xw 4pc")
        eq(good.display, "K7Q2-M9XW-4PC")
        throws<CodesException.CheckMismatch> { spec.parse("K7Q2-M9XW-4PD") } // one wrong character
        throws<CodesException.CheckMismatch> { spec.parse("K7Q2-M9WX-4PC") } // two swapped
        throws<CodesException.WrongLength> { spec.parse("K7Q2-M9XW-4P") } // one missing
        eq(spec.combinations(), 3_656_158_440_062_976uL, "36^10")
        expect(spec.entropyBits() > 51.6 && spec.entropyBits() < 51.7) { "entropy ${spec.entropyBits()}" }
        spec.close()
    }

    test("codes: invalid specs are refused with the Rust message") {
        val len = throws<CodesException.InvalidSpec> { CodeSpec("0123456789", 5u, false) }
        eq(len.message, "code length 5 is outside 6..=10")
        val dup = throws<CodesException.InvalidSpec> { CodeSpec("AAB", 6u, false) }
        eq(dup.message, "alphabet symbol 'A' appears more than once")
        throws<CodesException.InvalidSpec> { CodeSpec("ABCDEF", 6u, true) } // 6 = 4k+2: no check
        eq(codesAlphabetSupportsCheck("ABCDEF"), false)
        eq(codesAlphabetSupportsCheck("0123456789ABCDEFGHJKMNPQRSTVWXYZ"), true)
        eq(specs.getValue("alnum10").checkCharacter("ABCDEFGHIJ"), null, "no check character")
    }

    specs.values.forEach { it.close() }
}
