"""The emulator's AI-bot crypto (JSON envelope, encrypted files) against wechatpy, both ways.

The emulator's implementation is written apart from wechatpy; the bot uses wechatpy's
`WeChatCrypto(token, key, '')`. If both agree, each checks the other."""

from __future__ import annotations

import base64
import json
import os

import pytest
import xmltodict
from wechatpy.crypto.base import WeChatCipher
from wechatpy.crypto.pkcs7 import PKCS7Encoder
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.emulator import cipher as crypto

TOKEN = "aibotTokenDemo"
KEY = "Zm9vYmFyYmF6cXV4MDEyMzQ1Njc4OWFiY2RlZmdoaWo"  # 43 characters
assert len(KEY) == 43

CALLBACK = {"msgid": "CAIQ16HMjQYY", "aibotid": "AIBOTID", "chatid": "wrgrid-g1", "chattype": "group",
            "from": {"userid": "lisi"}, "response_url": "http://127.0.0.1:8080/emulator/aibot/response/x",
            "msgtype": "text", "text": {"content": "@网格助手 清理小广告15处,入户走访十二户"}}


def wechatpy_crypto(token: str = TOKEN) -> WeChatCrypto:
    return WeChatCrypto(token, KEY, "")


def as_xml(encrypted: str) -> str:
    # wechatpy reads XML: re-wrap the JSON body's "encrypt" as WeCom's XML callbacks carry it.
    return f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"


def test_emulator_envelope_decrypts_with_wechatpy():
    plain = json.dumps(CALLBACK, ensure_ascii=False)
    env = crypto.seal_json(TOKEN, KEY, plain, timestamp="1732600000", nonce="4815162342")
    assert set(env) == {"encrypt", "msgsignature", "timestamp", "nonce"}
    got = wechatpy_crypto().decrypt_message(as_xml(env["encrypt"]), env["msgsignature"], env["timestamp"],
                                            env["nonce"])
    assert json.loads(got) == CALLBACK
    # The URL check decrypts the same way (echostr instead of a body).
    echo = crypto.seal_json(TOKEN, KEY, "1616140317555161061", timestamp="1732600001", nonce="42")
    assert wechatpy_crypto().check_signature(echo["msgsignature"], echo["timestamp"], echo["nonce"],
                                             echo["encrypt"]) in (b"1616140317555161061", "1616140317555161061")


def test_wechatpy_reply_rewrapped_as_json_decrypts_with_the_emulator():
    reply = {"msgtype": "stream", "stream": {"id": "S1", "finish": True,
                                             "content": "<@lisi>\n已记录 #R128\n· 小广告清理 **15处**"}}
    xml = wechatpy_crypto().encrypt_message(json.dumps(reply, ensure_ascii=False), "774411", "1732600002")
    x = xmltodict.parse(xml)["xml"]
    env = {"encrypt": x["Encrypt"], "msgsignature": x["MsgSignature"], "timestamp": x["TimeStamp"],
           "nonce": x["Nonce"]}
    assert json.loads(crypto.open_json(TOKEN, KEY, json.dumps(env))) == reply
    # A callback carries signature, timestamp and nonce in the query string instead.
    assert json.loads(crypto.open_json(TOKEN, KEY, {"encrypt": env["encrypt"]}, msg_signature=env["msgsignature"],
                                       timestamp=env["timestamp"], nonce=env["nonce"])) == reply


def test_long_chinese_payload_both_ways():
    text = "入户走访十二户," * 800  # several kilobytes, many AES blocks
    env = crypto.seal_json(TOKEN, KEY, text, timestamp="1", nonce="2")
    assert wechatpy_crypto().decrypt_message(as_xml(env["encrypt"]), env["msgsignature"], "1", "2") == text
    x = xmltodict.parse(wechatpy_crypto().encrypt_message(text, "3", "4"))["xml"]
    assert crypto.open_json(TOKEN, KEY, {"encrypt": x["Encrypt"], "msgsignature": x["MsgSignature"],
                                         "timestamp": "4", "nonce": "3"}) == text


def test_signature_mismatch_is_detected():
    env = crypto.seal_json(TOKEN, KEY, json.dumps(CALLBACK), timestamp="1732600000", nonce="99")
    with pytest.raises(crypto.SignatureError):
        crypto.open_json(TOKEN, KEY, {**env, "msgsignature": "0" * 40})
    with pytest.raises(crypto.SignatureError):
        crypto.open_json("another-token", KEY, env)
    with pytest.raises(crypto.SignatureError):
        crypto.open_json(TOKEN, KEY, {**env, "nonce": "100"})
    # One character of the ciphertext changed: refused before any decryption.
    enc = env["encrypt"]
    flipped = enc[:10] + ("A" if enc[10] != "A" else "B") + enc[11:]
    with pytest.raises(crypto.SignatureError):
        crypto.open_json(TOKEN, KEY, {**env, "encrypt": flipped})
    # wechatpy refuses the emulator's envelope under another token, too.
    with pytest.raises(InvalidSignatureException):
        wechatpy_crypto("another-token").decrypt_message(as_xml(enc), env["msgsignature"], env["timestamp"],
                                                         env["nonce"])


def test_receiveid_must_be_empty():
    # An app callback (receiveid = corp id) is not an AI-bot envelope, and wechatpy with '' agrees.
    enc = crypto.encrypt(KEY, "wwcorp0001", "{}")
    sig = crypto.signature(TOKEN, "1", "2", enc)
    with pytest.raises(ValueError):
        crypto.open_json(TOKEN, KEY, {"encrypt": enc, "msgsignature": sig, "timestamp": "1", "nonce": "2"})
    with pytest.raises(InvalidCorpIdException):
        wechatpy_crypto().decrypt_message(as_xml(enc), sig, "1", "2")


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 1000, 250_000])
def test_file_crypto_round_trip(size):
    data = os.urandom(size)
    enc = crypto.encrypt_file(KEY, data)
    assert len(enc) % 32 == 0 and len(enc) > size  # PKCS#7 to 32: always at least one byte of padding
    assert enc[:16] != data[:16] or size == 0
    assert crypto.decrypt_file(KEY, enc) == data
    # The same bytes as AES-256-CBC with IV = key[:16] and PKCS#7 to 32, done by wechatpy's primitives.
    key = base64.b64decode(KEY + "=")
    cipher = WeChatCipher(key, key[:16])
    assert PKCS7Encoder.decode(cipher.decrypt(enc)) == data
    assert cipher.encrypt(PKCS7Encoder.encode(data)) == enc


def test_file_decrypt_refuses_garbage():
    with pytest.raises(ValueError):
        crypto.decrypt_file(KEY, b"")
    with pytest.raises(ValueError):
        crypto.decrypt_file(KEY, b"x" * 33)
    with pytest.raises(ValueError):
        # Decrypted with a different key the padding is nonsense.
        crypto.decrypt_file(KEY, crypto.encrypt_file("A" * 43, b"\x89PNG" + bytes(100)))
