// fleetwire.sensor through the Kotlin bindings: test-vectors/sensor.json (uploads and acks from
// fields to frames and back, tampered and wrong-key uploads refused), a logger replayed against
// the recorded ack, and a LoggerSession uploading to a CloudSession.
package org.fleetwire.tests

import java.io.File
import org.fleetwire.*

private const val ST0: ULong = 9_000_000uL
private const val FRAME_HEADER = 6

private fun num(v: Any?) = (v as Long)

private fun batchOf(f: Map<String, Any?>) = SensorBatch(
    logger = num(f["logger"]).toULong(),
    epoch = num(f["epoch"]).toUInt(),
    firstSeq = num(f["first_seq"]).toULong(),
    start = num(f["start"]).toULong(),
    intervalS = num(f["interval_s"]).toUInt(),
    channels = f["channels"].list().map { c ->
        val l = c.list()
        SensorChannel(num(l[0]).toUByte(), num(l[1]).toUByte(), num(l[2]).toByte())
    },
    values = f["values"].list().map { (it as Long?)?.toInt() },
    gaps = f["gaps"].list().map { g -> g.list().let { SensorGap(num(it[0]).toULong(), num(it[1]).toULong()) } },
    alarms = f["alarms"].list().map { a ->
        val l = a.list()
        val kind = when (l[2] as String) {
            "high" -> SensorAlarmKind.High(num(l[3]).toInt())
            "low" -> SensorAlarmKind.Low(num(l[3]).toInt())
            "cleared" -> SensorAlarmKind.Cleared
            "probe_fault" -> SensorAlarmKind.ProbeFault
            "probe_disconnected" -> SensorAlarmKind.ProbeDisconnected
            else -> error("alarm ${l[2]}")
        }
        SensorAlarm(num(l[0]).toULong(), num(l[1]).toUByte(), kind)
    },
    status = (f["status"] as Map<*, *>?)?.let { s ->
        val fw = s["firmware"].list()
        SensorStatus(num(s["counter"]).toUInt(), num(s["battery_mv"]).toUShort(), num(s["battery_percent"]).toUByte(),
            num(fw[0]).toUByte(), num(fw[1]).toUByte(), num(fw[2]).toUShort())
    },
    previous = (f["previous"] as Map<*, *>?)?.let { p ->
        SensorEpochEnd(num(p["epoch"]).toUInt(), num(p["next_seq"]).toULong(), p["abandoned"] as Boolean)
    },
)

private fun markOf(v: Any?) = v?.list()?.let { SensorMark(num(it[0]).toUInt(), num(it[1]).toULong()) }

private fun ackOf(f: Map<String, Any?>) = SensorAck(
    batchIndex = num(f["batch_index"]).toUInt(),
    stored = markOf(f["stored"]),
    serverTime = num(f["server_time"]).toULong(),
    settings = (f["settings"] as Map<*, *>?)?.let { s ->
        SensorSettings(
            num(s["version"]).toUInt(),
            num(s["interval_s"]).toUInt(),
            s["thresholds"].list().map { t ->
                val l = t.list()
                SensorThreshold(num(l[0]).toUByte(), (l[1] as Long?)?.toInt(), (l[2] as Long?)?.toInt())
            },
        )
    },
)

private fun body(frame: ByteArray) = frame.copyOfRange(FRAME_HEADER, frame.size)

internal fun sensorTests(dir: File) {
    val v = Json(File(dir, "sensor.json").readText()).parse().obj()
    val logger = num(v["logger"]).toULong()
    val key = unhex(v["logger_key"] as String)
    val master = unhex(v["master_key"] as String)
    val uploads = v["uploads"].list().map { it.obj() }
    val acks = v["acks"].list().map { it.obj() }

    test("sensor vector: logger key derivation") {
        eq(hex(sensorLoggerKeyDerive(master, logger)), v["logger_key"] as String)
    }

    for (u in uploads) {
        val f = u["fields"].obj()
        val upload = SensorUpload(batchOf(f), num(f["settings_version"]).toUInt(), f["last"] as Boolean)
        test("sensor vector upload '${u["name"]}' encodes from fields to its frame") {
            val enc = sensorEncodeUpload(key, upload)
            eq(hex(enc.frame), u["frame"] as String, "frame")
            eq(hex(enc.tag), u["tag"] as String, "tag")
        }
        test("sensor vector upload '${u["name"]}' decodes to its fields") {
            val frame = unhex(u["frame"] as String)
            val dec = sensorDecodeUpload(body(frame), key)
            eq(dec.upload, upload, "fields")
            eq(hex(dec.tag), u["tag"] as String, "tag")
            eq(sensorUploadLogger(body(frame)), logger, "claimed logger")
        }
    }

    for (a in acks) {
        val f = a["fields"].obj()
        test("sensor vector ack '${a["name"]}' encodes and decodes") {
            val tag = unhex(a["answers_tag"] as String)
            eq(hex(sensorEncodeAck(key, tag, ackOf(f))), a["frame"] as String, "frame")
            val b = body(unhex(a["frame"] as String))
            eq(sensorDecodeAck(b).ack, ackOf(f), "fields")
            expect(sensorVerifyAck(b, key, tag)) { "ack verifies" }
            expect(!sensorVerifyAck(b, key, ByteArray(16))) { "ack bound to its upload" }
            expect(!sensorVerifyAck(b, ByteArray(32), tag)) { "ack bound to the key" }
        }
    }

    for (i in v["invalid"].list().map { it.obj() }) {
        test("sensor vector invalid '${i["name"]}' refused as ${i["error"]}") {
            eq(i["error"] as String, "bad_mac")
            val e = throws<SensorException.BadMac> {
                sensorDecodeUpload(body(unhex(i["frame"] as String)), unhex(i["key"] as String))
            }
            eq(e.message, "batch from logger 1001 failed authentication: wrong key for this logger, or the bytes were tampered with")
        }
    }

    test("sensor: bad arguments are refused") {
        val k = throws<SensorException.InvalidInput> { sensorDecodeUpload(ByteArray(3), ByteArray(3)) }
        eq(k.message, "logger key must be 32 bytes, got 3")
        throws<SensorException.Decode> { sensorDecodeUpload(ByteArray(3), key) }
        val none = throws<SensorException.NoBatches> { LoggerSession(logger, key, ST0, emptyList()) }
        eq(none.message, "a logger session needs at least one batch; use Batch::empty to check in without data")
    }

    val first = uploads[0]
    val firstBatch = batchOf(first["fields"].obj())

    test("sensor: LoggerSession replayed against the recorded ack") {
        LoggerSession(logger, key, ST0, listOf(firstBatch)).use { s ->
            eq(hex(s.pollTransmit()!!), first["frame"] as String, "first flight is the vector upload")
            eq(s.pollTransmit(), null)
            eq(s.state(), SensorState.AWAITING_ACKS)
            eq(s.pollTimeout(), ST0 + 20_000uL, "radio deadline")
            val ack = unhex(acks[0]["frame"] as String)
            // Split anywhere: the machine frames the stream itself.
            s.handleInput(ST0 + 5uL, ack.copyOfRange(0, 7))
            s.handleInput(ST0 + 6uL, ack.copyOfRange(7, ack.size))
            eq(s.pollEvent(), LoggerEvent.Acked(0u, SensorMark(0u, 4uL), 1_767_227_000uL), "acked")
            val settings = (s.pollEvent() as LoggerEvent.Settings).settings
            eq(settings, ackOf(acks[0]["fields"].obj()).settings!!, "settings")
            eq(s.pollEvent(), LoggerEvent.Closed(SensorCloseReason(SensorCloseKind.FINISHED, "finished")))
            eq(s.stored(), listOf(SensorMark(0u, 4uL)))
            eq(s.state(), SensorState.CLOSED)
        }
    }

    test("sensor: a tampered ack is refused and nothing is freed") {
        LoggerSession(logger, key, ST0, listOf(firstBatch)).use { s ->
            s.pollTransmit()
            val ack = unhex(acks[0]["frame"] as String).also { it[10] = (it[10].toInt() xor 1).toByte() }
            throws<SensorException> { s.handleInput(ST0, ack) }
            eq(s.stored(), emptyList<SensorMark>(), "nothing acknowledged")
            val closed = s.pollEvent() as LoggerEvent.Closed
            expect(closed.reason.kind != SensorCloseKind.FINISHED) { "closed with an error" }
        }
    }

    test("sensor: handleClose ends both sides once (handlePeerClosed is its old name)") {
        val sensor = LoggerSession(logger, key, ST0, listOf(firstBatch))
        val cloud = CloudSession(ST0)
        cloud.handleInput(ST0, sensor.pollTransmit()!!)
        eq(cloud.pollEvent(), CloudEvent.KeyNeeded(logger))
        // The connection breaks before the cloud answers: nothing was acknowledged.
        sensor.handleClose(ST0 + 1uL)
        cloud.handleClose(ST0 + 1uL)
        eq((sensor.pollEvent() as LoggerEvent.Closed).reason.kind, SensorCloseKind.PEER_CLOSED)
        eq((cloud.pollEvent() as CloudEvent.Closed).reason.kind, SensorCloseKind.PEER_CLOSED)
        sensor.handleClose(ST0 + 2uL)
        cloud.handleClose(ST0 + 2uL)
        eq(sensor.pollEvent(), null)
        eq(cloud.pollEvent(), null)
        eq(sensor.stored(), emptyList<SensorMark>(), "nothing freed")
        eq(sensor.state(), SensorState.CLOSED)
        eq(cloud.state(), SensorState.CLOSED)
        val old = LoggerSession(logger, key, ST0, listOf(firstBatch))
        old.handlePeerClosed(ST0)
        eq((old.pollEvent() as LoggerEvent.Closed).reason.kind, SensorCloseKind.PEER_CLOSED)
        sensor.close()
        cloud.close()
        old.close()
    }

    test("sensor: LoggerSession uploads to a CloudSession") {
        val batches = listOf(firstBatch, firstBatch.copy(firstSeq = 5uL, start = firstBatch.start + 1500uL))
        val sensor = LoggerSession(logger, key, ST0, batches)
        val cloud = CloudSession(ST0)
        val store = mutableListOf<SensorBatch>()
        val loggerEvents = mutableListOf<LoggerEvent>()
        val cloudEvents = mutableListOf<CloudEvent>()
        repeat(20) {
            while (true) { val b = sensor.pollTransmit() ?: break; cloud.handleInput(ST0, b) }
            while (true) {
                val e = cloud.pollEvent() ?: break
                cloudEvents.add(e)
                when (e) {
                    is CloudEvent.KeyNeeded -> cloud.provideKey(ST0, e.logger,
                        CloudLoggerRecord(sensorLoggerKeyDerive(master, e.logger), null, null, 1_767_230_000uL))
                    is CloudEvent.Batch -> { store.add(e.batch); cloud.confirmStored(ST0, e.id) }
                    else -> {}
                }
            }
            while (true) { val b = cloud.pollTransmit() ?: break; sensor.handleInput(ST0, b) }
            while (true) loggerEvents.add(sensor.pollEvent() ?: break)
        }
        eq(store, batches, "stored batches")
        eq(cloudEvents.first(), CloudEvent.KeyNeeded(logger))
        eq(cloudEvents.last(), CloudEvent.Closed(SensorCloseReason(SensorCloseKind.FINISHED, "finished")))
        eq(loggerEvents.last(), LoggerEvent.Closed(SensorCloseReason(SensorCloseKind.FINISHED, "finished")))
        eq(sensor.stored(), listOf(SensorMark(0u, 9uL)), "freed through")
        eq(cloud.logger(), logger)
        eq(cloud.state(), SensorState.CLOSED)
        sensor.close()
        cloud.close()

        // An unknown logger is rejected; the logger learns why.
        val lost = LoggerSession(logger, key, ST0, listOf(firstBatch))
        val c2 = CloudSession(ST0)
        c2.handleInput(ST0, lost.pollTransmit()!!)
        eq(c2.pollEvent(), CloudEvent.KeyNeeded(logger))
        c2.provideKey(ST0, logger, null)
        val r = (c2.pollEvent() as CloudEvent.Closed).reason
        eq(r.kind, SensorCloseKind.UNKNOWN_LOGGER)
        eq(r.message, "logger 1001 is not registered with the cloud (no key)")
        val e = throws<SensorException.Rejected> { lost.handleInput(ST0, c2.pollTransmit()!!) }
        eq(e.message, "the cloud rejected the upload: unknown logger")
        lost.close()
        c2.close()
    }

    test("sensor: a new epoch opens only with the exact end of the current one; acks cover their own epoch") {
        val tail = firstBatch.copy(firstSeq = 10uL, start = firstBatch.start + 3000uL)
        val opener = firstBatch.copy(epoch = 1u, values = listOf(210, 211), previous = SensorEpochEnd(0u, 15uL, false))
        val sensor = LoggerSession(logger, key, ST0, listOf(tail, opener))
        val flight = sensor.pollTransmit()!!
        var mark: SensorMark? = SensorMark(0u, 9uL)
        fun record() = CloudLoggerRecord(key, mark, null, 1_767_230_000uL)
        // Replayed alone first, the opener is not stored: the store does not hold 0..14 yet.
        val firstLen = FRAME_HEADER + java.nio.ByteBuffer.wrap(flight, 2, 4).int
        val replay = CloudSession(ST0)
        replay.handleInput(ST0, flight.copyOfRange(firstLen, flight.size))
        eq(replay.pollEvent(), CloudEvent.KeyNeeded(logger))
        replay.provideKey(ST0, logger, record())
        expect(replay.pollEvent() is CloudEvent.OutOfOrder) { "replayed opener not stored" }
        replay.close()
        // The logger's own flight: the tail, then the opener closing epoch 0 at 15.
        val cloud = CloudSession(ST0)
        cloud.handleInput(ST0, flight)
        val closes = mutableListOf<SensorEpochEnd?>()
        repeat(3) {
            while (true) {
                val e = cloud.pollEvent() ?: break
                when (e) {
                    is CloudEvent.KeyNeeded -> cloud.provideKey(ST0, e.logger, record())
                    is CloudEvent.Batch -> { eq(e.after, mark); closes.add(e.closes); mark = e.batch.let { SensorMark(it.epoch, it.firstSeq + it.values.size.toULong() - 1uL) }; cloud.confirmStored(ST0, e.id) }
                    else -> {}
                }
            }
        }
        eq(closes, listOf(null, SensorEpochEnd(0u, 15uL, false)), "the opener closes epoch 0")
        while (true) { val b = cloud.pollTransmit() ?: break; sensor.handleInput(ST0, b) }
        eq(sensor.stored(), listOf(SensorMark(0u, 14uL), SensorMark(1u, 1uL)), "one mark per epoch")
        sensor.close()
        cloud.close()
    }
}
