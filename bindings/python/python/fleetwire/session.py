"""Player login and heartbeat (fleetwire-session): Client, ServerConnection, Presence, Backoff.

Drive a machine like this (the same shape for every fleetwire machine)::

    client = Client(player_id, secret, "player/1.0", now_ms())
    while True:
        while (data := client.poll_transmit()) is not None:
            sock.sendall(data)
        while (event := client.poll_event()) is not None:
            handle(event)            # event.kind: "logged_in", "heartbeat_acked", ...
        deadline = client.poll_timeout()
        data = recv_until(sock, deadline)
        if data:
            client.handle_input(now_ms(), data)
        else:
            client.handle_timeout(now_ms())
"""

from typing import Union

from ._fleetwire import session as _native

SessionError = _native.SessionError
BadFrame = _native.BadFrame
ProtocolViolation = _native.ProtocolViolation
VersionMismatch = _native.VersionMismatch
AuthFailed = _native.AuthFailed
NotApproved = _native.NotApproved
LoginTimeout = _native.LoginTimeout
PeerSilent = _native.PeerSilent
ConnectionLost = _native.ConnectionLost
PeerClosed = _native.PeerClosed
LocalClose = _native.LocalClose
PROTOCOL_VERSION = _native.PROTOCOL_VERSION
MAX_TEXT_LEN = _native.MAX_TEXT_LEN
CHANNEL_BINDING_LABEL = _native.CHANNEL_BINDING_LABEL
PlayerId = _native.PlayerId
PlayerSecret = _native.PlayerSecret
PlayerVerifier = _native.PlayerVerifier
ConfigHash = _native.ConfigHash
PlayerStatus = _native.PlayerStatus
CloseCode = _native.CloseCode
Stats = _native.Stats
Message = _native.Message
Client = _native.Client
ServerConnection = _native.ServerConnection
Presence = _native.Presence
Backoff = _native.Backoff
LoggedIn = _native.LoggedIn
HeartbeatAcked = _native.HeartbeatAcked
ConfigChanged = _native.ConfigChanged
Closed = _native.Closed
LookupPlayer = _native.LookupPlayer
PlayerLoggedIn = _native.PlayerLoggedIn
HeartbeatReceived = _native.HeartbeatReceived
PlayerOnline = _native.PlayerOnline
PlayerOffline = _native.PlayerOffline
OtherEvent = _native.OtherEvent

ClientEvent = Union[LoggedIn, HeartbeatAcked, ConfigChanged, Closed, OtherEvent]
ServerEvent = Union[LookupPlayer, PlayerLoggedIn, HeartbeatReceived, Closed, OtherEvent]
PresenceEvent = Union[PlayerOnline, PlayerOffline, OtherEvent]

del _native

__all__ = [
    "ClientEvent",
    "ServerEvent",
    "PresenceEvent",
    "AuthFailed",
    "Backoff",
    "BadFrame",
    "CHANNEL_BINDING_LABEL",
    "Client",
    "CloseCode",
    "Closed",
    "ConfigChanged",
    "ConfigHash",
    "ConnectionLost",
    "HeartbeatAcked",
    "HeartbeatReceived",
    "LocalClose",
    "LoggedIn",
    "LoginTimeout",
    "LookupPlayer",
    "MAX_TEXT_LEN",
    "Message",
    "NotApproved",
    "OtherEvent",
    "PROTOCOL_VERSION",
    "PeerClosed",
    "PeerSilent",
    "PlayerId",
    "PlayerLoggedIn",
    "PlayerOffline",
    "PlayerOnline",
    "PlayerSecret",
    "PlayerStatus",
    "PlayerVerifier",
    "Presence",
    "ProtocolViolation",
    "ServerConnection",
    "SessionError",
    "Stats",
    "VersionMismatch",
]
