"""WeCom's callback encryption, written from the protocol description with `cryptography`.

It deliberately does not use wechatpy: the emulator encrypts with this and the bot decrypts with
wechatpy, so each checks the other (tests also check it against the official sample vectors).
The AI bot (智能机器人) uses the same scheme with an empty receiveid, wrapped in JSON instead of
XML, and encrypts the files it links to with the same key but without any framing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


def _key(aes_key: str) -> bytes:
    return base64.b64decode(aes_key + "=")


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def encrypt(aes_key: str, receive_id: str, plaintext: str, random16: bytes | None = None) -> str:
    key = _key(aes_key)
    body = plaintext.encode()
    raw = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + receive_id.encode()
    pad = BLOCK - len(raw) % BLOCK
    raw += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(raw) + enc.finalize()).decode()


def decrypt(aes_key: str, encrypted: str) -> tuple[str, str]:
    """Returns (plaintext, receive_id)."""
    key = _key(aes_key)
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    raw = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    pad = raw[-1]
    if not 1 <= pad <= BLOCK:
        raise ValueError("bad padding")
    raw = raw[:-pad]
    (length,) = struct.unpack(">I", raw[16:20])
    return raw[20:20 + length].decode(), raw[20 + length:].decode()


def callback_envelope(corp_id: str, agent_id: int, encrypted: str) -> str:
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>")


# --- the AI bot: JSON envelopes and encrypted files --------------------------------------------
class SignatureError(ValueError):
    """The signature does not match the encrypted text: tampered with, or another token."""


def _nonce() -> str:
    return str(secrets.randbelow(10**9))


def seal_json(token: str, aes_key: str, plaintext: str, *, timestamp: str | None = None,
              nonce: str | None = None) -> dict[str, str]:
    """The encrypted JSON envelope as the AI bot's passive reply carries it:
    {"encrypt", "msgsignature", "timestamp", "nonce"}. A callback body is the "encrypt" part alone,
    its signature, timestamp and nonce travel in the query string."""
    ts = timestamp or str(int(time.time()))
    nonce = nonce or _nonce()
    enc = encrypt(aes_key, "", plaintext)
    return {"encrypt": enc, "msgsignature": signature(token, ts, nonce, enc), "timestamp": ts, "nonce": nonce}


def open_json(token: str, aes_key: str, envelope: dict | str, *, msg_signature: str | None = None,
              timestamp: str | None = None, nonce: str | None = None) -> str:
    """Checks and decrypts an AI-bot envelope; signature, timestamp and nonce come from the
    envelope itself (a reply) or from the arguments (a callback's query string)."""
    if isinstance(envelope, str):
        envelope = json.loads(envelope)
    enc = envelope.get("encrypt")
    if not isinstance(enc, str) or not enc:
        raise ValueError("no encrypt field")
    sig = msg_signature if msg_signature is not None else str(envelope.get("msgsignature", ""))
    ts = timestamp if timestamp is not None else str(envelope.get("timestamp", ""))
    nonce = nonce if nonce is not None else str(envelope.get("nonce", ""))
    if not secrets.compare_digest(signature(token, ts, nonce, enc), sig):
        raise SignatureError("signature mismatch")
    plaintext, receive_id = decrypt(aes_key, enc)
    if receive_id:
        raise ValueError("receiveid must be empty for the AI bot")
    return plaintext


def encrypt_file(aes_key: str, data: bytes) -> bytes:
    """A file behind an AI-bot image URL: the bytes alone, padded, no random prefix or length."""
    key = _key(aes_key)
    pad = BLOCK - len(data) % BLOCK
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return enc.update(data + bytes([pad]) * pad) + enc.finalize()


def decrypt_file(aes_key: str, data: bytes) -> bytes:
    key = _key(aes_key)
    if not data or len(data) % 16:
        raise ValueError("not a whole number of AES blocks")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    raw = dec.update(data) + dec.finalize()
    pad = raw[-1]
    if not 1 <= pad <= BLOCK or raw[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    return raw[:-pad]
