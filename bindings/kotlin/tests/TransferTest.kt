// fleetwire.transfer through the Kotlin bindings: test-vectors/transfer.json (manifest, messages,
// resume record, invalid inputs), a download through the Receiver from the Rust Sender with one
// tampered chunk, resume, and the watchdog.
package org.fleetwire.tests

import java.io.File
import org.fleetwire.*

private const val TT0: ULong = 7_000_000uL

/** Rust's `Debug` form of a message, to compare with the vectors' `debug` field. */
private fun rustDebug(m: TransferMessage): String {
    fun bytes(b: ByteArray) = b.joinToString(", ", "[", "]") { (it.toInt() and 0xff).toString() }
    fun set(r: List<ChunkRange>) = r.joinToString(", ", "ChunkSet { ranges: [", "] }") { "(${it.start}, ${it.end})" }
    return when (m) {
        is TransferMessage.Offer -> "Offer { transfer: ${m.transfer}, window: ${m.window}, manifest: ${bytes(m.manifest)} }"
        is TransferMessage.Accept -> "Accept { transfer: ${m.transfer}, window: ${m.window}, have: ${set(m.have)} }"
        is TransferMessage.Reject -> "Reject { transfer: ${m.transfer}, reason: ${m.reason} }"
        is TransferMessage.Chunk -> "Chunk { transfer: ${m.transfer}, index: ${m.index}, seq: ${m.seq}, data: ${bytes(m.data)} }"
        is TransferMessage.Ack -> "Ack { transfer: ${m.transfer}, index: ${m.index}, seq: ${m.seq}, cumulative: ${m.cumulative}, sack: ${set(m.sack)} }"
        is TransferMessage.Cancel -> "Cancel { transfer: ${m.transfer} }"
    }
}

/** Sender and receiver wired back to back with virtual time; the app side writes to `disk`. */
private class Link(val sender: Sender, val receiver: Receiver, size: Int) {
    val disk = ByteArray(size)
    val receiverEvents = mutableListOf<ReceiverEvent>()
    val senderEvents = mutableListOf<SenderEvent>()
    var now = TT0
    /** Rewrites a message on its way to the receiver (null drops it). */
    var tamper: (ByteArray) -> ByteArray? = { it }
    /** Stop storing chunks after this many (simulates a crash mid-download). */
    var storeLimit = Int.MAX_VALUE
    var stored = 0

    fun step(): Boolean {
        var moved = false
        while (true) {
            val m = sender.pollTransmit() ?: break
            moved = true
            val out = tamper(m) ?: continue
            try { receiver.handleInput(now, out) } catch (_: TransferException) {}
        }
        while (true) {
            val e = receiver.pollEvent() ?: break
            receiverEvents.add(e)
            if (e is ReceiverEvent.ChunkVerified && stored < storeLimit) {
                e.data.copyInto(disk, e.offset.toInt())
                stored++
                receiver.chunkStored(now, e.transfer, e.index)
            }
        }
        while (true) {
            val m = receiver.pollTransmit() ?: break
            moved = true
            try { sender.handleInput(now, m) } catch (_: TransferException) {}
        }
        while (true) senderEvents.add(sender.pollEvent() ?: break)
        return moved
    }

    /** Runs until `done()`, jumping virtual time to the next sender deadline when idle. */
    fun runUntil(done: () -> Boolean) {
        repeat(10_000) {
            if (done()) return
            if (!step()) {
                val t = sender.pollTimeout() ?: error("idle with no deadline")
                now = maxOf(now, t)
                sender.handleTimeout(now)
            }
        }
        error("transfer did not finish")
    }
}

internal fun transferTests(dir: File) {
    val v = Json(File(dir, "transfer.json").readText()).parse().obj()
    val pub = unhex(v["public_key"] as String)
    val seed = unhex(v["signing_key_seed"] as String)
    val file = unhex(v["file"] as String)
    val mf = v["manifest"].obj()
    val manifestBytes = unhex(mf["hex"] as String)
    val byName = v["messages"].list().map { it.obj() }.associateBy { it["name"] as String }
    fun msg(name: String) = unhex(byName.getValue(name)["hex"] as String)
    val invalid = v["invalid"].list().map { it.obj() }.associate { it["name"] as String to unhex(it["hex"] as String) }
    val keys = listOf(pub)

    test("transfer vector: signer seed gives the public key") {
        ContentSigner.fromSeed(seed).use { eq(hex(it.publicKey()), v["public_key"] as String) }
    }

    test("transfer vector: manifest signed from its fields == bytes") {
        ContentSigner.fromSeed(seed).use { s ->
            s.signFile(
                FileKind.CONFIGURATION,
                (mf["file_id"] as Long).toULong(),
                (mf["version"] as Long).toULong(),
                (mf["chunk_size"] as Long).toUInt(),
                file,
            ).use { eq(hex(it.bytes()), mf["hex"] as String, "manifest bytes") }
        }
    }

    test("transfer vector: manifest bytes decode and verify to its fields") {
        SignedManifest.decode(manifestBytes, keys).use { m ->
            val i = m.info()
            eq(i.kind, FileKind.CONFIGURATION)
            eq(i.fileId.toLong(), mf["file_id"] as Long, "file id")
            eq(i.version.toLong(), mf["version"] as Long, "version")
            eq(i.length.toLong(), mf["length"] as Long, "length")
            eq(i.chunkSize.toLong(), mf["chunk_size"] as Long, "chunk size")
            eq(i.chunkCount, 3u, "chunk count")
            eq(hex(i.fileSha256), mf["file_sha256"] as String, "file sha256")
            eq(hex(transferSha256(file)), mf["file_sha256"] as String, "sha256 helper")
            eq(hex(i.bytes), mf["hex"] as String, "bytes")
            eq(m.verifyFile(file), FileCheck.Ok, "verify file")
            val bad = file.copyOf().also { it[20] = (it[20] + 1).toByte() }
            eq(m.verifyFile(bad), FileCheck.Corrupt(1u), "corrupt file")
            eq(m.verifyFile(file.copyOf(39)), FileCheck.Corrupt(null), "short file")
            eq(m.chunkOffset(2u), 32uL)
            eq(m.chunkLen(2u), 8uL)
            expect(m.chunkMatches(2u, file.copyOfRange(32, 40))) { "chunk 2 matches" }
            expect(!m.chunkMatches(1u, file.copyOfRange(32, 40))) { "chunk 1 does not" }
            eq(m.chunkSha256(3u), null, "no chunk 3")
        }
    }

    val fields = mapOf(
        "offer" to TransferMessage.Offer(1u, 64u, manifestBytes),
        "accept" to TransferMessage.Accept(1u, 32u, listOf(ChunkRange(0u, 2u))),
        "reject_bad_signature" to TransferMessage.Reject(2u, 1u),
        "chunk" to TransferMessage.Chunk(1u, 2u, 300uL, file.copyOfRange(32, 40)),
        "ack" to TransferMessage.Ack(1u, 2u, 300uL, 3u, listOf(ChunkRange(5u, 6u), ChunkRange(8u, 10u))),
        "cancel" to TransferMessage.Cancel(1u),
    )
    eq(fields.keys, byName.keys, "every message vector has fields here")
    for ((name, m) in fields) {
        test("transfer vector $name encodes from fields to its bytes") {
            eq(rustDebug(m), byName.getValue(name)["debug"] as String, "fields match the vector")
            eq(hex(transferMessageEncode(m)), byName.getValue(name)["hex"] as String, "bytes")
        }
        test("transfer vector $name decodes to its fields") {
            eq(rustDebug(transferMessageDecode(msg(name))), byName.getValue(name)["debug"] as String)
        }
    }

    test("transfer vector: invalid manifest and message refused") {
        val e = throws<TransferException.BadSignature> { SignedManifest.decode(invalid.getValue("manifest_bad_signature"), keys) }
        eq(e.message, "manifest signature does not verify with any trusted content-signing key")
        val d = throws<TransferException.Decode> { transferMessageDecode(invalid.getValue("message_bad_crc")) }
        eq(d.message, "message dropped: invalid message checksum: CRC-32C does not match (corrupted in transit)")
        // An untrusted key refuses the good manifest too; a short key is a caller bug.
        throws<TransferException.BadSignature> { SignedManifest.decode(manifestBytes, listOf(ByteArray(32))) }
        val k = throws<TransferException.InvalidInput> { SignedManifest.decode(manifestBytes, listOf(ByteArray(5))) }
        eq(k.message, "trusted key must be 32 bytes, got 5")
        Receiver(keys, TT0).use { r ->
            throws<TransferException.Decode> { r.handleInput(TT0, invalid.getValue("message_bad_crc")) }
            eq(r.stats().messagesDropped, 1uL, "dropped")
            eq(r.state(), MachineState.OPEN, "connection goes on")
        }
    }

    test("transfer vector: resume record after chunk 2 (encode and decode)") {
        val p = transferPartialDecode(unhex((v["partial_after_chunk_2"].obj())["hex"] as String), keys)
        eq(p.stored, listOf(2u), "stored chunks")
        eq(hex(p.manifest.bytes), mf["hex"] as String, "manifest")
        // The same record from the receiver fed the offer and chunk vectors.
        Receiver(keys, TT0).use { r ->
            r.handleInput(TT0, msg("offer"))
            val offered = r.pollEvent() as ReceiverEvent.Offered
            eq(offered.transfer, 1u)
            eq(offered.manifest.version, 3uL)
            eq(offered.resumed, 0u)
            val accept = transferMessageDecode(r.pollTransmit()!!) as TransferMessage.Accept
            eq(accept.have, emptyList<ChunkRange>(), "nothing held yet")
            r.handleInput(TT0, msg("chunk"))
            val cv = r.pollEvent() as ReceiverEvent.ChunkVerified
            eq(cv.offset, 32uL)
            eq(hex(cv.data), hex(file.copyOfRange(32, 40)))
            r.chunkStored(TT0, 1u, 2u)
            val ack = transferMessageDecode(r.pollTransmit()!!) as TransferMessage.Ack
            eq(ack.index to ack.seq, 2u to 300uL, "ack names the transmission")
            eq(hex(r.partial(1u)!!), (v["partial_after_chunk_2"].obj())["hex"] as String, "partial bytes")
            eq(r.partial(9u), null, "no such transfer")
            val u = throws<TransferException.UnknownTransfer> { r.chunkStored(TT0, 9u, 0u) }
            eq(u.message, "no open transfer with id 9")
        }
    }

    // A bigger file through the Rust sender (via the binding) with one tampered chunk.
    val signer = ContentSigner.fromSeed(ByteArray(32) { 42 })
    val big = ByteArray(20_000) { (it % 251).toByte() }
    val bigManifest = signer.signFile(FileKind.MEDIA, 77uL, 5uL, 1024u, big)

    test("download through the Receiver; a tampered chunk is rejected and fetched again") {
        val link = Link(Sender(TT0, SenderOptions(window = 4u)), Receiver(listOf(signer.publicKey()), TT0), big.size)
        var tampered = 0
        link.tamper = { bytes ->
            val m = transferMessageDecode(bytes)
            if (m is TransferMessage.Chunk && m.index == 3u && tampered == 0) {
                tampered++
                val data = m.data.copyOf().also { it[0] = (it[0].toInt() xor 0x55).toByte() }
                transferMessageEncode(m.copy(data = data)) // valid checksum, wrong digest
            } else bytes
        }
        // On-demand source: the sender asks for each chunk.
        val id = link.sender.offer(link.now, bigManifest)
        val sink = link.senderEvents
        link.runUntil {
            for (e in sink.filterIsInstance<SenderEvent.ChunkNeeded>()) {
                link.sender.provideChunk(link.now, e.transfer, e.index, big.copyOfRange(e.offset.toInt(), (e.offset + e.len).toInt()))
            }
            sink.removeAll { it is SenderEvent.ChunkNeeded }
            link.receiverEvents.any { it is ReceiverEvent.Completed } && sink.any { it is SenderEvent.Completed }
        }
        eq(tampered, 1, "tampered once")
        expect(link.disk.contentEquals(big)) { "file bytes differ" }
        val rejected = link.receiverEvents.filterIsInstance<ReceiverEvent.ChunkRejected>()
        eq(rejected, listOf(ReceiverEvent.ChunkRejected(id, 3u)), "rejected chunk")
        eq(link.receiver.stats().rejectedChunks, 1uL)
        val done = link.receiverEvents.last { it is ReceiverEvent.Completed } as ReceiverEvent.Completed
        eq(done, ReceiverEvent.Completed(id, 77uL, 5uL))
        eq(bigManifest.verifyFile(link.disk), FileCheck.Ok, "whole file verifies")
        eq(link.sender.ackedChunks(id), null, "finished transfers are forgotten")
        eq(link.receiver.pollTimeout(), null, "no work, no deadline")
        link.sender.close()
        link.receiver.close()
    }

    test("resume: a new receiver given the saved record asks only for the rest") {
        val first = Link(Sender(TT0), Receiver(listOf(signer.publicKey()), TT0), big.size)
        first.storeLimit = 8
        val id = first.sender.offer(TT0, bigManifest, big)
        repeat(50) { first.step() }
        val saved = first.receiver.partial(id)!!
        eq(transferPartialDecode(saved, listOf(signer.publicKey())).stored.size, 8, "stored before the crash")

        val second = Link(Sender(TT0), Receiver(listOf(signer.publicKey()), TT0), big.size)
        first.disk.copyInto(second.disk)
        second.receiver.addPartial(saved)
        second.sender.offer(TT0, bigManifest, big)
        second.runUntil { second.receiverEvents.any { it is ReceiverEvent.Completed } }
        eq((second.receiverEvents.first() as ReceiverEvent.Offered).resumed, 8u, "resumed chunks")
        val acc = second.senderEvents.filterIsInstance<SenderEvent.Accepted>().single()
        eq(acc.alreadyHeld, 8u, "sender skips them")
        eq(second.receiver.stats().chunksReceived, 20uL - 8uL, "only the rest travelled")
        expect(second.disk.contentEquals(big)) { "file bytes differ" }
        throws<TransferException.BadSignature> {
            Receiver(listOf(pub), TT0).use { it.addPartial(saved) } // another server's key
        }
    }

    test("receiver refuses an older version than it holds") {
        Receiver(listOf(signer.publicKey()), TT0).use { r ->
            signer.signFile(FileKind.MEDIA, 77uL, 6uL, 1024u, big).use { r.hold(it.bytes()) }
            val e = throws<TransferException.StaleVersion> {
                r.handleInput(TT0, transferMessageEncode(TransferMessage.Offer(1u, 8u, bigManifest.bytes())))
            }
            eq(e.message, "offered version 5 of file 77 is older than held version 6")
            val reject = transferMessageDecode(r.pollTransmit()!!) as TransferMessage.Reject
            eq(reject.reason, 3.toUByte(), "stale version code")
            val f = r.pollEvent() as ReceiverEvent.Failed
            eq(f.reason.kind, TransferErrorKind.STALE_VERSION)
            eq(f.reason.message, "offered version 5 of file 77 is older than held version 6")
        }
    }

    test("idle receiver closes once with IdleTimeout") {
        Receiver(listOf(signer.publicKey()), TT0, ReceiverOptions(idleTimeoutMs = 5_000uL)).use { r ->
            eq(r.pollTimeout(), null, "no work yet")
            r.handleInput(TT0, transferMessageEncode(TransferMessage.Offer(1u, 8u, bigManifest.bytes())))
            eq(r.pollTimeout(), TT0 + 5_000uL, "deadline")
            r.handleTimeout(TT0 + 4_999uL)
            eq(r.state(), MachineState.OPEN)
            r.handleTimeout(TT0 + 5_000uL)
            eq(r.state(), MachineState.CLOSED)
            var last: ReceiverEvent? = null
            while (true) last = r.pollEvent() ?: break
            val reason = (last as ReceiverEvent.Closed).reason
            eq(reason.kind, TransferErrorKind.IDLE_TIMEOUT)
            eq(reason.message, "no progress from the peer for 5000 ms")
        }
    }

    test("handleClose: each open transfer fails once with ConnectionLost; the resume record stays") {
        val link = Link(Sender(TT0), Receiver(listOf(signer.publicKey()), TT0), big.size)
        link.storeLimit = 8
        val id = link.sender.offer(TT0, bigManifest, big)
        repeat(50) { link.step() }
        eq(link.receiverEvents.any { it is ReceiverEvent.Completed }, false, "still open")
        // The connection breaks; each side's driver tells its machine.
        link.sender.handleClose(link.now)
        link.receiver.handleClose(link.now)
        val r = generateSequence { link.receiver.pollEvent() }.toList()
        val s = generateSequence { link.sender.pollEvent() }.toList()
        expect(r.size >= 2 && s.size >= 2) { "events: $r / $s" }
        val rf = r[r.size - 2] as ReceiverEvent.Failed
        eq(rf.transfer, id)
        eq(rf.reason.kind, TransferErrorKind.CONNECTION_LOST)
        eq(rf.reason.message, "the connection ended before the transfer finished; a new connection resumes it")
        eq((r.last() as ReceiverEvent.Closed).reason.kind, TransferErrorKind.CONNECTION_LOST)
        val sf = s[s.size - 2] as SenderEvent.Failed
        eq(sf.transfer, id)
        eq(sf.reason.kind, TransferErrorKind.CONNECTION_LOST)
        eq((s.last() as SenderEvent.Closed).reason.kind, TransferErrorKind.CONNECTION_LOST)
        // Once: nothing more is sent or reported.
        link.sender.handleClose(link.now + 1uL)
        link.receiver.handleClose(link.now + 1uL)
        eq(link.receiver.pollEvent(), null)
        eq(link.sender.pollEvent(), null)
        eq(link.receiver.pollTransmit(), null)
        eq(link.sender.pollTransmit(), null)
        eq(link.receiver.state(), MachineState.CLOSED)
        // The resume record outlives the connection.
        val saved = link.receiver.partial(id)!!
        eq(transferPartialDecode(saved, listOf(signer.publicKey())).stored.size, 8, "stored before the close")
        link.sender.close()
        link.receiver.close()
    }

    test("watchdog: verify, fall back to last-known-good, refuse rollback") {
        val v1 = ByteArray(3000) { 1 }
        val v2 = ByteArray(3000) { 2 }
        val m1 = signer.signFile(FileKind.CONFIGURATION, 9uL, 1uL, 1024u, v1)
        val m2 = signer.signFile(FileKind.CONFIGURATION, 9uL, 2uL, 1024u, v2)
        Watchdog(listOf(signer.publicKey()), TT0, WatchdogOptions(checkIntervalMs = 60_000uL)).use { w ->
            eq(w.pollTimeout(), TT0 + 60_000uL, "first scheduled check")
            w.install(TT0, m1.bytes())
            eq(w.verifyFile(TT0, 9uL, v1), FileCheck.Ok)
            eq(w.pollEvent(), WatchdogEvent.Verified(9uL, 1uL))
            eq(w.knownGood(9uL)?.version, 1uL, "known good")
            w.install(TT0, m2.bytes())
            eq(w.current(9uL)?.version, 2uL, "current")
            val corrupt = v2.copyOf().also { it[2500] = 0 }
            eq(w.verifyFile(TT0, 9uL, corrupt), FileCheck.Corrupt(2u))
            eq(w.pollEvent(), WatchdogEvent.Anomaly(9uL, 2uL, FileCheck.Corrupt(2u)))
            eq(w.pollEvent(), WatchdogEvent.Fallback(9uL, 2uL, 1uL))
            eq(w.pollEvent(), WatchdogEvent.RequestFresh(9uL, 2uL, 1u))
            eq(w.current(9uL)?.version, 1uL, "fell back")
            val stale = throws<TransferException.StaleVersion> { w.install(TT0, m1.bytes()) }
            eq(stale.message, "offered version 1 of file 9 is older than held version 2")
            throws<TransferException.BadSignature> { w.install(TT0, invalid.getValue("manifest_bad_signature")) }
            val nw = throws<TransferException.InvalidInput> { w.report(TT0, 1234uL, FileCheck.Missing) }
            eq(nw.message, "invalid configuration: file is not watched")
            w.handleTimeout(TT0 + 60_000uL)
            eq(w.pollEvent(), WatchdogEvent.VerifyNeeded(9uL, 1uL), "scheduled check")
            eq(w.pollTimeout(), TT0 + 120_000uL, "next check")
            eq(w.stats(), WatchdogStats(2uL, 1uL, 1uL, 1uL))
        }
    }
}
