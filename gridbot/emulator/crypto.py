"""WeCom's callback encryption, written from the protocol description with `cryptography`.

It deliberately does not use wechatpy: the emulator encrypts with this and the bot decrypts with
wechatpy, so each checks the other (tests also check it against the official sample vectors).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

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
