// fleetwire.session through the Kotlin bindings: shared vectors, login, heartbeat, failures.
// Called from Main.kt's runner with the test-vectors directory.
package org.fleetwire.tests

import java.io.File
import org.fleetwire.*

// --- helpers ---------------------------------------------------------------------------------

private const val HEADER = 6
private const val T0: ULong = 5_000_000uL

private fun optHash(v: Any?): ByteArray? = (v as String?)?.let { unhex(it) }

private fun messageFromFields(name: String, f: Map<String, Any?>): Message = when (name) {
    "hello" -> PlayerId.parse(f["player_id"] as String).use { Message.Hello(it.bytes(), f["software"] as String) }
    "challenge" -> Message.Challenge(unhex(f["nonce"] as String))
    "proof" -> Message.Proof(unhex(f["signature"] as String))
    "welcome" -> Message.Welcome((f["heartbeat_interval_ms"] as Long).toUInt(), optHash(f["config_hash"]))
    "heartbeat" -> Message.Heartbeat(
        (f["seq"] as Long).toULong(),
        PlayerStatus(
            content = f["content"] as String,
            freeStorageBytes = (f["free_storage_bytes"] as Long).toULong(),
            versions = f["versions"] as String,
            configHash = optHash(f["config_hash"]),
        ),
    )
    "heartbeat_ack" -> Message.HeartbeatAck((f["seq"] as Long).toULong(), optHash(f["config_hash"]))
    "close" -> Message.Close((f["code"] as Long).toUByte(), f["message"] as String)
    else -> error("unknown vector $name")
}

private fun fieldsOf(m: Message): Map<String, Any?> = when (m) {
    is Message.Hello -> PlayerId.fromBytes(m.playerId).use { mapOf("player_id" to it.toString(), "software" to m.software) }
    is Message.Challenge -> mapOf("nonce" to hex(m.nonce))
    is Message.Proof -> mapOf("signature" to hex(m.signature))
    is Message.Welcome -> mapOf(
        "heartbeat_interval_ms" to m.heartbeatIntervalMs.toLong(),
        "config_hash" to m.configHash?.let(::hex),
    )
    is Message.Heartbeat -> mapOf(
        "seq" to m.seq.toLong(),
        "content" to m.status.content,
        "free_storage_bytes" to m.status.freeStorageBytes.toLong(),
        "versions" to m.status.versions,
        "config_hash" to m.status.configHash?.let(::hex),
    )
    is Message.HeartbeatAck -> mapOf("seq" to m.seq.toLong(), "config_hash" to m.configHash?.let(::hex))
    is Message.Close -> mapOf("code" to m.code.toLong(), "message" to m.message)
}

private class SessionPair(
    val client: Client,
    val server: ServerConnection,
    val lookup: (ServerEvent.LookupPlayer) -> Triple<PlayerVerifier?, Boolean, ByteArray?>,
) {
    val clientEvents = mutableListOf<ClientEvent>()
    val serverEvents = mutableListOf<ServerEvent>()

    /** Moves bytes both ways until idle, answering lookups. Returns the new events. */
    fun pump(now: ULong): kotlin.Pair<List<ClientEvent>, List<ServerEvent>> {
        val c0 = clientEvents.size
        val s0 = serverEvents.size
        repeat(20) {
            var moved = false
            while (true) {
                val data = client.pollTransmit() ?: break
                moved = true
                try { server.handleInput(now, data) } catch (_: SessionException) {}
            }
            while (true) {
                val e = server.pollEvent() ?: break
                serverEvents.add(e)
                if (e is ServerEvent.LookupPlayer) {
                    val (v, approved, hash) = lookup(e)
                    server.resolvePlayer(now, v, approved, hash)
                }
            }
            while (true) {
                val data = server.pollTransmit() ?: break
                moved = true
                try { client.handleInput(now, data) } catch (_: SessionException) {}
            }
            while (true) clientEvents.add(client.pollEvent() ?: break)
            if (!moved) return clientEvents.drop(c0) to serverEvents.drop(s0)
        }
        error("did not settle")
    }
}

private val SECRET = PlayerSecret.fromBytes(ByteArray(32) { 7 })
private val PLAYER = PlayerId.fromBytes(ByteArray(16) { 1 })

private fun newPair(
    secret: PlayerSecret = SECRET,
    lookup: (ServerEvent.LookupPlayer) -> Triple<PlayerVerifier?, Boolean, ByteArray?> = { Triple(SECRET.verifier(), true, null) },
) = SessionPair(
    Client(PLAYER, secret, "player/9.9", T0),
    ServerConnection(ByteArray(32) { 9 }, T0),
    lookup,
)

// --- the checks ------------------------------------------------------------------------------

internal fun sessionTests(dir: File) {
    val vectors = Json(File(dir, "session.json").readText()).parse().obj()
    val messages = vectors["messages"].list().map { it.obj() }
    val invalid = vectors["invalid"].list().map { it.obj() }

    for (v in messages) {
        val name = v["name"] as String
        test("vector $name encodes to its frame") {
            val msg = messageFromFields(name, v["fields"].obj())
            eq(hex(messageEncodeFrame(msg)), v["frame"] as String, "frame")
            eq(hex(messageEncodeBody(msg)), (v["frame"] as String).substring(2 * HEADER), "body")
            eq(messageType(msg).toLong(), v["type"] as Long, "type")
        }
        test("vector $name decodes to its fields") {
            val frame = unhex(v["frame"] as String)
            eq(frame[0].toUByte(), sessionProtocolVersion(), "version")
            val msg = messageDecode(frame[1].toUByte(), frame.copyOfRange(HEADER, frame.size))
            eq(fieldsOf(msg), v["fields"].obj(), "fields")
        }
    }

    for (v in invalid) {
        test("invalid frame refused: ${v["name"]}") {
            ServerConnection(ByteArray(32), T0).use { server ->
                val e = throws<SessionException> { server.handleInput(T0, unhex(v["frame"] as String)) }
                expect(e.message!!.endsWith(v["error"] as String)) { "message: ${e.message}" }
                eq(server.state(), SessionState.CLOSED, "state")
                val closed = server.pollEvent() as ServerEvent.Closed
                eq(closed.reason.message, e.message, "Closed reason")
            }
        }
    }

    test("invalid frames map to sealed exception classes") {
        val byName = invalid.associate { it["name"] as String to unhex(it["frame"] as String) }
        throws<SessionException.BadFrame> { ServerConnection(ByteArray(32), T0).handleInput(T0, byName.getValue("unknown type")) }
        throws<SessionException.VersionMismatch> { ServerConnection(ByteArray(32), T0).handleInput(T0, byName.getValue("wrong version")) }
        val e = throws<DecodeException.Malformed> { messageDecode(0x7fu, ByteArray(0)) }
        eq(e.message, "unknown message type 0x7f")
    }

    test("login vector: verifier and proof") {
        val login = vectors["login"].obj()
        val secret = PlayerSecret.parse(login["secret"] as String)
        eq(secret.hex(), login["secret"] as String)
        eq(secret.verifier().toString(), login["verifier"] as String, "verifier")
        val client = Client(PlayerId.parse(login["player_id"] as String), secret, "player/2.4.1", 0uL, unhex(login["channel_binding"] as String))
        client.use {
            val hello = messages.first { it["name"] == "hello" }["frame"]
            eq(hex(it.pollTransmit()!!), hello as String, "hello frame")
            it.handleInput(0uL, messageEncodeFrame(Message.Challenge(unhex(login["nonce"] as String))))
            val proof = messages.first { m -> m["name"] == "proof" }["frame"]
            eq(hex(it.pollTransmit()!!), proof as String, "proof frame")
        }
    }

    test("identity helpers") {
        val id = PlayerId.fromBytes(ByteArray(16) { 0xab.toByte() })
        eq(id.toString(), "abababab-abababab-abababab-abababab")
        eq(PlayerId.parse(id.toString().uppercase()), id, "parsed id")
        eq(PlayerId.parse(id.toString()).hashCode(), id.hashCode(), "hash")
        val p = throws<InvalidInputException.Parse> { PlayerId.parse("abc") }
        eq(p.message, "expected 32 hex digits, found 3")
        val w = throws<InvalidInputException.WrongLength> { PlayerId.fromBytes(ByteArray(3)) }
        eq(w.message, "player_id must be 16 bytes, got 3")
        eq(PlayerVerifier.fromBytes(SECRET.verifier().bytes()), SECRET.verifier(), "verifier")
        eq(closeCodeDescribe(7u), "replaced by a newer connection")
    }

    test("login then heartbeat with virtual time") {
        val config = ByteArray(32) { 0x33 }
        val pair = newPair(lookup = { Triple(SECRET.verifier(), true, config) })
        val (c, s) = pair.pump(T0)
        eq(s.map { it::class.simpleName }, listOf("LookupPlayer", "LoggedIn"), "server events")
        val lookup = s[0] as ServerEvent.LookupPlayer
        expect(lookup.playerId.contentEquals(PLAYER.bytes())) { "lookup id" }
        eq(lookup.software, "player/9.9")
        eq(c.map { it::class.simpleName }, listOf("LoggedIn", "ConfigChanged"), "client events")
        eq((c[0] as ClientEvent.LoggedIn).heartbeatIntervalMs, 30_000uL, "interval")
        expect((c[1] as ClientEvent.ConfigChanged).hash.contentEquals(config)) { "config hash" }
        eq(pair.client.state(), SessionState.ONLINE)
        eq(pair.server.state(), SessionState.ONLINE)
        expect(pair.server.isAuthenticated()) { "authenticated" }
        eq(pair.server.playerId(), PLAYER, "server player id")

        pair.client.setStatus(PlayerStatus("lobby", 123uL, "app 1", config))
        eq(pair.client.pollTimeout(), T0 + 30_000uL, "heartbeat deadline")
        pair.client.handleTimeout(T0 + 29_999uL)
        eq(pair.client.pollTransmit(), null, "nothing early")
        val now = pair.client.pollTimeout()!!
        pair.client.handleTimeout(now)
        val (c2, s2) = pair.pump(now)
        val hb = s2.single() as ServerEvent.Heartbeat
        eq(hb.seq, 1uL)
        eq(hb.status.content, "lobby")
        eq(hb.status.freeStorageBytes, 123uL)
        eq(c2.single(), ClientEvent.HeartbeatAcked(1uL, 0uL), "ack")
        eq(pair.client.stats().heartbeats, 1uL)
        eq(pair.server.stats().heartbeats, 1uL)
        eq(pair.server.pollTimeout(), now + 50_000uL, "silence deadline")

        pair.client.closeSession(now + 20uL, "shutting down")
        val (c3, s3) = pair.pump(now + 20uL)
        val cr = (c3.single() as ClientEvent.Closed).reason
        eq(cr.kind, CloseKind.LOCAL_CLOSE)
        eq(cr.code, 0.toUByte(), "normal close code")
        val sr = (s3.single() as ServerEvent.Closed).reason
        eq(sr.kind, CloseKind.PEER_CLOSED)
        eq(sr.message, "peer closed the session (normal): \"shutting down\"")
        val misuse = throws<ApiMisuseException.Closed> { pair.client.closeSession(now + 30uL) }
        eq(misuse.message, "the session is closed")
        pair.client.close()
        pair.server.close()
    }

    test("wrong secret and unknown player fail alike") {
        val wrong = newPair(secret = PlayerSecret.fromBytes(ByteArray(32) { 8 }))
        val (c, s) = wrong.pump(T0)
        val cr = (c.last() as ClientEvent.Closed).reason
        val sr = (s.last() as ServerEvent.Closed).reason
        val msg = "authentication failed: unknown player id or wrong secret"
        eq(cr.kind, CloseKind.AUTH_FAILED)
        eq(sr.kind, CloseKind.AUTH_FAILED)
        eq(cr.message, msg)
        eq(sr.message, msg)
        val unknown = newPair(lookup = { Triple(null, false, null) })
        val (c2, _) = unknown.pump(T0)
        eq((c2.last() as ClientEvent.Closed).reason, cr, "same reason")
        // The exception thrown by handleInput says the same.
        val client = Client(PLAYER, SECRET, "", T0)
        client.pollTransmit()
        val e = throws<SessionException.AuthFailed> {
            client.handleInput(T0, messageEncodeFrame(Message.Close(1u, "authentication failed")))
        }
        eq(e.message, msg)
    }

    test("silent player is closed and goes offline") {
        val pair = newPair()
        val presence = Presence(50_000uL, T0)
        pair.pump(T0)
        presence.seen(T0, PLAYER)
        val on = presence.pollEvent() as PresenceEvent.Online
        expect(on.playerId.contentEquals(PLAYER.bytes())) { "online id" }
        expect(presence.isOnline(PLAYER)) { "online" }
        val deadline = pair.server.pollTimeout()!!
        eq(deadline, T0 + 50_000uL, "deadline")
        pair.server.handleTimeout(deadline - 1uL)
        eq(pair.server.state(), SessionState.ONLINE)
        pair.server.handleTimeout(deadline)
        val r = (pair.server.pollEvent() as ServerEvent.Closed).reason
        eq(r.kind, CloseKind.PEER_SILENT)
        eq(r.message, "peer silent for 50000 ms (limit exceeded)")
        val bye = pair.server.pollTransmit()!!
        eq((messageDecode(bye[1].toUByte(), bye.copyOfRange(HEADER, bye.size)) as Message.Close).code, 6.toUByte(), "silent code")

        var t = presence.pollTimeout()!!
        while (presence.isOnline(PLAYER)) {
            presence.handleTimeout(t)
            t = presence.pollTimeout() ?: t
            expect(t <= T0 + 50_250uL) { "offline late: $t" }
        }
        val off = presence.pollEvent() as PresenceEvent.Offline
        expect(off.playerId.contentEquals(PLAYER.bytes())) { "offline id" }
        eq(off.lastSeenMs, T0, "last seen")
        eq(presence.pollTimeout(), null)
        eq(presence.onlineCount(), 0uL)
    }

    test("client gives up on a silent server; login timeout") {
        val pair = newPair()
        pair.pump(T0)
        var now = T0
        while (pair.client.state() == SessionState.ONLINE) {
            now = pair.client.pollTimeout()!!
            pair.client.handleTimeout(now)
            while (pair.client.pollTransmit() != null) {}
        }
        eq(now, T0 + 50_000uL, "gave up at")
        var last: ClientEvent? = null
        while (true) last = pair.client.pollEvent() ?: break
        eq((last as ClientEvent.Closed).reason.kind, CloseKind.PEER_SILENT)

        val lonely = Client(PLAYER, SECRET, "", T0, options = ClientOptions(loginTimeoutMs = 2_000uL))
        eq(lonely.pollTimeout(), T0 + 2_000uL)
        lonely.handleTimeout(T0 + 2_000uL)
        val r = (lonely.pollEvent() as ClientEvent.Closed).reason
        eq(r.kind, CloseKind.LOGIN_TIMEOUT)
        eq(r.message, "login did not complete within 2000 ms")
    }

    test("handleClose: both sides close once with ConnectionLost") {
        val pair = newPair()
        pair.pump(T0)
        pair.client.handleClose(T0 + 10uL)
        pair.server.handleClose(T0 + 10uL)
        val c = (pair.client.pollEvent() as ClientEvent.Closed).reason
        eq(c.kind, CloseKind.CONNECTION_LOST)
        eq(c.message, "connection lost without a close message")
        eq((pair.server.pollEvent() as ServerEvent.Closed).reason.kind, CloseKind.CONNECTION_LOST)
        pair.client.handleClose(T0 + 20uL)
        pair.server.handleClose(T0 + 20uL)
        eq(pair.client.pollEvent(), null)
        eq(pair.server.pollEvent(), null)
        eq(pair.client.pollTransmit(), null, "no close message is sent")
        eq(pair.server.pollTransmit(), null, "no close message is sent")
        eq(pair.client.state(), SessionState.CLOSED)
        pair.client.close()
        pair.server.close()
    }

    test("api misuse and clock clamp") {
        val pair = newPair()
        throws<ApiMisuseException.NotOnline> { pair.client.heartbeatNow(T0) }
        val tooLong = throws<ApiMisuseException.TooLong> { pair.client.setStatus(PlayerStatus(content = "x".repeat(65))) }
        eq(tooLong.message, "content is 65 bytes, the limit is 64")
        throws<ApiMisuseException.NoLookupPending> { pair.server.resolvePlayer(T0, SECRET.verifier(), true) }
        throws<InvalidInputException.WrongLength> { ServerConnection(ByteArray(5), T0) }
        pair.pump(T0)
        pair.client.handleTimeout(0uL) // backwards: clamped, nothing fires
        eq(pair.client.state(), SessionState.ONLINE)
        eq(pair.client.pollTransmit(), null)
        eq(pair.client.pollTimeout(), T0 + 30_000uL)
    }

    test("backoff bounds") {
        Backoff(1_000uL, 60_000uL).use { b ->
            val ceilings = (0 until 9).map {
                val c = b.ceilingMs()
                val d = b.nextDelayMs(ULong.MAX_VALUE)
                expect(d <= c) { "delay $d above ceiling $c" }
                c
            }
            eq(ceilings, listOf(1_000uL, 2_000uL, 4_000uL, 8_000uL, 16_000uL, 32_000uL, 60_000uL, 60_000uL, 60_000uL))
            eq(b.attempts(), 9u)
            eq(b.nextDelayMs(0uL), 0uL)
            b.reset()
            eq(b.ceilingMs(), 1_000uL)
        }
        eq(Backoff.withDefaults().ceilingMs(), 1_000uL)
    }

}
