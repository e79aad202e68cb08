#!/usr/bin/env python3
"""Check Veil's known-answer vectors against docs/PROTOCOL.md.

An independent implementation of Veil protocol version 1, written from the
specification alone, that recomputes and checks everything a third party can
check in testdata/vectors/*.json, and that checks tampered copies of each
vector are rejected.

Run from the repository root:

    python3 interop/python/verify_vectors.py [-v]

With -v, every expected rejection is printed with its reason. The environment
variable VEIL_VECTORS_DIR points it at another copy of the vectors.

The attachment vectors describe their plaintext as (plaintext_seed,
plaintext_length): SHA-256(seed || u64(0)) || SHA-256(seed || u64(1)) || ...
truncated to the length (u64 big-endian), as PROTOCOL.md's test-vector
section says.

Exit status: 0 if every check passed (or if the `cryptography` package is not
installed: the run is then skipped), 1 on any mismatch.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import struct
import sys

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric import x25519
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
except ImportError:  # pragma: no cover
    print("verify_vectors: the Python 'cryptography' package is not installed; skipped")
    sys.exit(0)

try:
    from cryptography.hazmat.primitives.asymmetric import mlkem
except ImportError:  # pragma: no cover
    mlkem = None

VERBOSE = "-v" in sys.argv[1:]
HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.environ.get("VEIL_VECTORS_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", "testdata", "vectors"))


class Reject(Exception):
    """A reader rejected its input (the spec's single opaque error)."""


# --------------------------------------------------------------------------
# Generic primitives

def u16(b):
    return struct.unpack(">H", b)[0]


def u32(b):
    return struct.unpack(">I", b)[0]


def u64(b):
    return struct.unpack(">Q", b)[0]


def lp8(x):
    """len8(x) || x"""
    if len(x) > 255:
        raise ValueError("len8 overflow")
    return bytes([len(x)]) + x


def lp16(x):
    """len16(x) || x"""
    if len(x) > 65535:
        raise ValueError("len16 overflow")
    return struct.pack(">H", len(x)) + x


def hkdf_extract(salt, ikm):
    return hmac.new(salt if salt else b"\x00" * 32, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def hkdf(ikm, salt, info, length=32):
    """HKDF-SHA256 (RFC 5869); an empty salt is HashLen zero bytes."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


def ct_eq(a, b):
    return hmac.compare_digest(a, b)


def b64url_decode(s):
    """Unpadded base64url (RFC 4648 section 5), canonical encodings only."""
    if isinstance(s, bytes):
        s = s.decode("ascii")
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if any(c not in alphabet for c in s) or len(s) % 4 == 1:
        raise Reject("not unpadded base64url")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if b64url_encode(raw) != s:
        raise Reject("non-canonical base64url")
    return raw


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).decode("ascii").rstrip("=")


def b64std_decode(s):
    """Unpadded standard base64 as age uses it, canonical encodings only."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    if any(c not in alphabet for c in s) or len(s) % 4 == 1:
        raise Reject("not unpadded base64")
    raw = base64.b64decode(s + "=" * (-len(s) % 4))
    if base64.b64encode(raw).decode("ascii").rstrip("=") != s:
        raise Reject("non-canonical base64")
    return raw


def ed25519_public(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def ed25519_sign(seed, msg):
    return Ed25519PrivateKey.from_private_bytes(seed).sign(msg)


# Ed25519 verification (section 2) is ZIP 215, written here from its rules:
# the curve -x^2 + y^2 = 1 + d x^2 y^2 over GF(p), points in extended
# coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x y = T/Z (RFC 8032 5.1.4).

ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)
ED_IDENTITY = (0, 1, 1, 0)


def ed_add(P, Q):
    """P + Q; the formula is complete, so it also doubles."""
    x1, y1, z1, t1 = P
    x2, y2, z2, t2 = Q
    a = (y1 - x1) * (y2 - x2) % ED_P
    b = (y1 + x1) * (y2 + x2) % ED_P
    c = 2 * t1 * t2 * ED_D % ED_P
    d = 2 * z1 * z2 % ED_P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P)


def ed_neg(P):
    x, y, z, t = P
    return (-x % ED_P, y, z, -t % ED_P)


def ed_double(P):
    x, y, z, _ = P
    a, b, c = x * x % ED_P, y * y % ED_P, 2 * z * z % ED_P
    h = a + b
    e, g = h - (x + y) * (x + y), a - b
    f = c + g
    return (e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P)


def ed_mul(k, P):
    """[k]P for 0 <= k < 2^256, four bits at a time."""
    table = [ED_IDENTITY, P]
    for _ in range(14):
        table.append(ed_add(table[-1], P))
    Q = ED_IDENTITY
    for i in range(252, -1, -4):
        Q = ed_double(ed_double(ed_double(ed_double(Q))))
        Q = ed_add(Q, table[(k >> i) & 15])
    return Q


def ed_is_identity(P):
    x, y, z, _ = P
    return x % ED_P == 0 and (y - z) % ED_P == 0


def ed_decode(b):
    """ZIP 215 point decoding: RFC 8032 5.1.3, except that y may be >= p (it
    is taken modulo p) and x = 0 with the sign bit set is accepted (as x = 0).
    None if no x exists for y."""
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    sign, y = n >> 255, (n & ((1 << 255) - 1)) % ED_P
    u, v = (y * y - 1) % ED_P, (ED_D * y * y + 1) % ED_P
    x = u * pow(v, 3, ED_P) * pow(u * pow(v, 7, ED_P), (ED_P - 5) // 8, ED_P) % ED_P
    if v * x * x % ED_P == (-u) % ED_P:
        x = x * ED_SQRT_M1 % ED_P
    if v * x * x % ED_P != u:
        return None
    if x & 1 != sign:
        x = -x % ED_P
    return (x, y, 1, x * y % ED_P)


def ed_encode(P):
    x, y, z, _ = P
    zi = pow(z, ED_P - 2, ED_P)
    x, y = x * zi % ED_P, y * zi % ED_P
    return (y | (x & 1) << 255).to_bytes(32, "little")


ED_B = ed_decode((4 * pow(5, ED_P - 2, ED_P) % ED_P).to_bytes(32, "little"))


def ed_fixed_table(P):
    """[j * 16^i]P for i < 64, j < 16: [k]P is then 64 additions."""
    rows = []
    for _ in range(64):
        row = [ED_IDENTITY, P]
        for _ in range(14):
            row.append(ed_add(row[-1], P))
        rows.append(row)
        P = ed_add(row[15], P)
    return rows


def ed_mul_fixed(k, table):
    Q = ED_IDENTITY
    for i in range(64):
        Q = ed_add(Q, table[i][(k >> (4 * i)) & 15])
    return Q


ED_B_TABLE = ed_fixed_table(ED_B)


def ed_mul_base(s):
    return ed_mul_fixed(s, ED_B_TABLE)


# Speed only: the keys seen more than once get a table of their own.
_KEY_SEEN, _KEY_TABLES = set(), {}


def ed_mul_key(k, A, pub):
    if pub in _KEY_TABLES:
        return ed_mul_fixed(k, _KEY_TABLES[pub])
    if pub in _KEY_SEEN and len(_KEY_TABLES) < 256:
        _KEY_TABLES[pub] = ed_fixed_table(A)
        return ed_mul_fixed(k, _KEY_TABLES[pub])
    _KEY_SEEN.add(pub)
    return ed_mul(k, A)


def ed25519_verify(pub, sig, msg):
    """ZIP 215: S < L, A and R decode (non-canonical encodings allowed), and
    [8][S]B = [8]R + [8][k]A with k = SHA-512(R || A || msg) mod L over the
    encodings as given."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    A, R = ed_decode(pub), ed_decode(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= ED_L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % ED_L
    Q = ed_add(ed_mul_base(s), ed_neg(ed_add(R, ed_mul_key(k, A, pub))))
    return ed_is_identity(ed_double(ed_double(ed_double(Q))))


def ed25519_verify_cofactorless(pub, sig, msg):
    """RFC 8032 5.1.7 without the factor 8, R compared byte for byte (what
    Go's crypto/ed25519 does). Not Veil's rule: only to check the vectors'
    informative "cofactorless" field."""
    A, s = ed_decode(pub), int.from_bytes(sig[32:], "little")
    if A is None or s >= ED_L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % ED_L
    return ed_encode(ed_add(ed_mul_base(s), ed_neg(ed_mul(k, A)))) == sig[:32]


def valid_signing_key(pub):
    """Section 4.2: a card's signing key is the canonical encoding of a point
    that is not of small order."""
    A = ed_decode(pub)
    return A is not None and ed_encode(A) == pub and not ed_is_identity(ed_double(ed_double(ed_double(A))))


def x25519_base(scalar):
    return x25519.X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def x25519_dh(scalar, point):
    return x25519.X25519PrivateKey.from_private_bytes(scalar).exchange(
        x25519.X25519PublicKey.from_public_bytes(point))


# ---- Bech32 (BIP 173, no length limit) -----------------------------------

BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= gen[i]
    return chk


def _bech32_hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data, frombits, tobits, pad):
    acc, bits, out = 0, 0, []
    maxv = (1 << tobits) - 1
    for v in data:
        acc = (acc << frombits) | v
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise Reject("bech32: invalid padding")
    return out


def bech32_decode(s):
    if s.lower() != s and s.upper() != s:
        raise Reject("bech32: mixed case")
    s_low = s.lower()
    pos = s_low.rfind("1")
    if pos < 1 or pos + 7 > len(s_low):
        raise Reject("bech32: bad separator")
    hrp, data = s_low[:pos], s_low[pos + 1:]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise Reject("bech32: bad hrp")
    try:
        values = [BECH32_CHARSET.index(c) for c in data]
    except ValueError:
        raise Reject("bech32: bad character")
    if _bech32_polymod(_bech32_hrp_expand(hrp) + values) != 1:
        raise Reject("bech32: bad checksum")
    return hrp, bytes(_convertbits(values[:-6], 5, 8, False))


def bech32_encode(hrp, data, upper=False):
    hrp_l = hrp.lower()
    values = _convertbits(data, 8, 5, True)
    poly = _bech32_polymod(_bech32_hrp_expand(hrp_l) + values + [0] * 6) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    s = hrp_l + "1" + "".join(BECH32_CHARSET[v] for v in values + checksum)
    return s.upper() if upper else s


# ---- ChaCha20 quarter rounds: HChaCha20 and XChaCha20-Poly1305 -----------

def _rotl(v, n):
    return ((v << n) & 0xFFFFFFFF) | (v >> (32 - n))


def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = list(struct.unpack("<4I", b"expand 32-byte k")) + list(struct.unpack("<8I", key)) \
        + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _qr(s, 0, 4, 8, 12); _qr(s, 1, 5, 9, 13); _qr(s, 2, 6, 10, 14); _qr(s, 3, 7, 11, 15)
        _qr(s, 0, 5, 10, 15); _qr(s, 1, 6, 11, 12); _qr(s, 2, 7, 8, 13); _qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha20poly1305_seal(key, nonce24, pt, ad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\x00" * 4 + nonce24[16:], pt, ad)


def xchacha20poly1305_open(key, nonce24, ct, ad):
    sub = hchacha20(key, nonce24[:16])
    try:
        return ChaCha20Poly1305(sub).decrypt(b"\x00" * 4 + nonce24[16:], ct, ad)
    except InvalidTag:
        raise Reject("aead")


# --------------------------------------------------------------------------
# age v1 (c2sp.org/age): keys, X25519 and mlkem768x25519 stanzas, files

XWING_LABEL = b"\\.//^\\"          # 5c2e2f2f5e5c
HPKE_KEM_MLKEM768_X25519 = 0x647A
HPKE_SUITE = b"HPKE" + struct.pack(">HHH", HPKE_KEM_MLKEM768_X25519, 0x0001, 0x0003)
AGE_PQ_INFO = b"age-encryption.org/mlkem768x25519"


def xwing_expand(seed):
    """filippo.io/hpke-pq expandKey for MLKEM768-X25519."""
    if mlkem is None:
        raise NotImplementedError("ML-KEM-768 is not available in this cryptography build")
    full = hashlib.shake_256(seed).digest(64 + 32)
    dk_pq = mlkem.MLKEM768PrivateKey.from_seed_bytes(full[:64])
    ek_pq = dk_pq.public_key().public_bytes_raw()
    dk_t = full[64:96]
    ek_t = x25519_base(dk_t)
    return ek_pq, ek_t, dk_pq, dk_t


def age_secret_to_recipient(kind, secret):
    if kind == 1:
        ek_pq, ek_t, _, _ = xwing_expand(secret)
        return ek_pq + ek_t
    return x25519_base(secret)


def parse_age_secret_key(text):
    hrp, data = bech32_decode(text)
    if text != text.upper():
        raise Reject("age secret key not upper case")
    if len(data) != 32:
        raise Reject("age secret key: bad length")
    if hrp == "age-secret-key-pq-":
        return 1, data
    if hrp == "age-secret-key-":
        return 2, data
    raise Reject("age secret key: unknown HRP " + hrp)


def valid_age_recipient(kind, raw):
    if kind == 2:
        return len(raw) == 32
    if len(raw) != 1216:
        return False
    if mlkem is None:
        return True  # cannot check the ML-KEM encapsulation key here
    try:
        mlkem.MLKEM768PublicKey.from_public_bytes(raw[:1184])
    except ValueError:
        return False
    return True


def hpke_labeled_extract(salt, label, ikm):
    return hkdf_extract(salt, b"HPKE-v1" + HPKE_SUITE + label + ikm)


def hpke_labeled_expand(prk, label, info, length):
    return hkdf_expand(prk, struct.pack(">H", length) + b"HPKE-v1" + HPKE_SUITE + label + info, length)


def hpke_open_base_xwing(seed, enc, info, aad, ct):
    """RFC 9180 OpenBase with KEM MLKEM768-X25519, HKDF-SHA256, ChaCha20Poly1305."""
    if len(enc) != 1120:
        raise Reject("hpke: bad enc length")
    ek_pq, ek_t, dk_pq, dk_t = xwing_expand(seed)
    ct_pq, ct_t = enc[:1088], enc[1088:]
    ss_pq = dk_pq.decapsulate(ct_pq)
    ss_t = x25519_dh(dk_t, ct_t)
    shared = hashlib.sha3_256(ss_pq + ss_t + ct_t + ek_t + XWING_LABEL).digest()
    psk_id_hash = hpke_labeled_extract(b"", b"psk_id_hash", b"")
    info_hash = hpke_labeled_extract(b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = hpke_labeled_extract(shared, b"secret", b"")
    key = hpke_labeled_expand(secret, b"key", context, 32)
    base_nonce = hpke_labeled_expand(secret, b"base_nonce", context, 12)
    try:
        return ChaCha20Poly1305(key).decrypt(base_nonce, ct, aad)
    except InvalidTag:
        raise Reject("hpke: aead")


def parse_age_file(data):
    """Parse a binary age v1 file: ([(args, body)], header_for_mac, mac, payload)."""
    pos = 0

    def line():
        nonlocal pos
        end = data.find(b"\n", pos)
        if end < 0:
            raise Reject("age: unterminated header line")
        ln = data[pos:end]
        pos = end + 1
        try:
            return ln.decode("ascii")
        except UnicodeDecodeError:
            raise Reject("age: non-ASCII header")

    if line() != "age-encryption.org/v1":
        raise Reject("age: not a v1 file")
    stanzas = []
    while True:
        start = pos
        ln = line()
        if ln.startswith("--- "):
            mac_text = ln[4:]
            header = data[:start + 3]
            if len(mac_text) != 43:
                raise Reject("age: bad MAC line")
            return stanzas, header, b64std_decode(mac_text), data[pos:]
        if not ln.startswith("-> "):
            raise Reject("age: unexpected header line")
        args = ln[3:].split(" ")
        if not args or any(a == "" or any(ord(c) < 33 or ord(c) > 126 for c in a) for a in args):
            raise Reject("age: bad stanza arguments")
        body = ""
        while True:
            bl = line()
            if len(bl) > 64:
                raise Reject("age: body line too long")
            body += bl
            if len(bl) < 64:
                break
        stanzas.append((args, b64std_decode(body)))


def age_unwrap(stanzas, identities):
    """identities: list of (kind, secret). Returns (file_key, index of identity)."""
    for idx, (kind, secret) in enumerate(identities):
        for args, body in stanzas:
            if kind == 2 and args[0] == "X25519":
                if len(args) != 2:
                    raise Reject("age: X25519 stanza arity")
                share = b64std_decode(args[1])
                if len(share) != 32 or len(body) != 32:
                    raise Reject("age: X25519 stanza sizes")
                shared = x25519_dh(secret, share)
                if shared == b"\x00" * 32:
                    raise Reject("age: all-zero X25519 shared secret")
                wrap = hkdf(shared, share + x25519_base(secret), b"age-encryption.org/v1/X25519")
                try:
                    return ChaCha20Poly1305(wrap).decrypt(b"\x00" * 12, body, b""), idx
                except InvalidTag:
                    continue
            if kind == 1 and args[0] == "mlkem768x25519":
                if len(args) != 2:
                    raise Reject("age: mlkem768x25519 stanza arity")
                enc = b64std_decode(args[1])
                if len(enc) != 1120 or len(body) != 32:
                    raise Reject("age: mlkem768x25519 stanza sizes")
                try:
                    return hpke_open_base_xwing(secret, enc, AGE_PQ_INFO, b"", body), idx
                except Reject:
                    continue
    raise Reject("age: no identity matched")


def age_encrypt_x25519(recipients, plaintext):
    """Minimal age v1 writer for X25519 recipients (used only to build negative cases)."""
    file_key = os.urandom(16)
    header = "age-encryption.org/v1\n"
    for rec in recipients:
        eph = os.urandom(32)
        share = x25519_base(eph)
        wrap = hkdf(x25519_dh(eph, rec), share + rec, b"age-encryption.org/v1/X25519")
        body = base64.b64encode(ChaCha20Poly1305(wrap).encrypt(b"\x00" * 12, file_key, b"")).decode().rstrip("=")
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        if not lines or len(lines[-1]) == 64:
            lines.append("")
        header += "-> X25519 " + base64.b64encode(share).decode().rstrip("=") + "\n" + "\n".join(lines) + "\n"
    header += "---"
    mac = hmac.new(hkdf(file_key, b"", b"header"), header.encode(), hashlib.sha256).digest()
    nonce = os.urandom(16)
    return (header.encode() + b" " + base64.b64encode(mac).rstrip(b"=") + b"\n" + nonce
            + stream_seal(hkdf(file_key, nonce, b"payload"), plaintext))


def age_decrypt(data, identities):
    stanzas, header, mac, payload = parse_age_file(data)
    file_key, idx = age_unwrap(stanzas, identities)
    if len(file_key) != 16:
        raise Reject("age: bad file key length")
    mac_key = hkdf(file_key, b"", b"header")
    if not ct_eq(hmac.new(mac_key, header, hashlib.sha256).digest(), mac):
        raise Reject("age: header MAC")
    if len(payload) < 16:
        raise Reject("age: short payload")
    pkey = hkdf(file_key, payload[:16], b"payload")
    return stream_open(pkey, payload[16:]), stanzas, idx


# --------------------------------------------------------------------------
# STREAM (age payload and VEILATT1 share the chunking rules)

CHUNK = 65536
TAG = 16


def stream_nonce(i, last):
    return i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def stream_open(key, ct, trace=None):
    """Open the chunk sequence with the spec's one-byte look-ahead rule."""
    aead = ChaCha20Poly1305(key)
    out, pos, i = [], 0, 0
    while True:
        rest = len(ct) - pos
        last = rest <= CHUNK + TAG  # the stream ends within chunk + 1 look-ahead byte
        n = rest if last else CHUNK + TAG
        if n < TAG:
            raise Reject("stream: truncated chunk")
        try:
            pt = aead.decrypt(stream_nonce(i, last), ct[pos:pos + n], b"")
        except InvalidTag:
            raise Reject("stream: chunk %d tag" % i)
        if last and not pt and i > 0:
            raise Reject("stream: empty last chunk")
        if trace is not None:
            trace.append((i, len(pt), last))
        out.append(pt)
        pos += n
        i += 1
        if last:
            return b"".join(out)


def stream_seal(key, pt):
    aead = ChaCha20Poly1305(key)
    chunks = [pt[i:i + CHUNK] for i in range(0, len(pt), CHUNK)] or [b""]
    return b"".join(aead.encrypt(stream_nonce(i, i == len(chunks) - 1), c, b"")
                    for i, c in enumerate(chunks))


# --------------------------------------------------------------------------
# Veil: cards (section 4.2)

LABEL_CARD = b"veil/v1/card"
LABEL_SUCCESSOR = b"veil/v1/card-successor"
LABEL_GRANT = b"veil/v1/grant"
LABEL_ENVELOPE = b"veil/v1/envelope"
MAX_CREATED = 253402300799


def signed(label, msg):
    return label + b"\x00" + msg


def valid_user_id(uid):
    if not 1 <= len(uid) <= 255:
        return False
    try:
        s = uid.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)


def encode_card_body(c):
    return (bytes([1, c["kind"]]) + struct.pack(">IQ", c["generation"], c["created"])
            + lp8(c["user_id"]) + c["signing_key"] + lp16(c["recipient"]))


def parse_card(b):
    if len(b) < 15:
        raise Reject("card: short")
    if b[0] != 1:
        raise Reject("card: version")
    kind = b[1]
    if kind not in (1, 2):
        raise Reject("card: kind")
    gen, created = u32(b[2:6]), u64(b[6:14])
    if created > MAX_CREATED:
        raise Reject("card: created")
    if gen >= MAX_GENERATIONS:
        raise Reject("card: generation")
    n = b[14]
    uid = b[15:15 + n]
    if len(uid) != n or not valid_user_id(uid):
        raise Reject("card: user ID")
    off = 15 + n
    sk = b[off:off + 32]
    off += 32
    if len(b) < off + 2:
        raise Reject("card: short")
    rl = u16(b[off:off + 2])
    off += 2
    if rl != (1216 if kind == 1 else 32):
        raise Reject("card: recipient length")
    rec = b[off:off + rl]
    off += rl
    body = b[:off]
    self_sig = b[off:off + 64]
    off += 64
    prev_sig = None
    if gen > 0:
        prev_sig = b[off:off + 64]
        off += 64
    if len(sk) != 32 or len(rec) != rl or len(self_sig) != 64 or off != len(b) \
            or (prev_sig is not None and len(prev_sig) != 64):
        raise Reject("card: size")
    if not valid_signing_key(sk):
        raise Reject("card: signing key of small order or not canonically encoded")
    if not valid_age_recipient(kind, rec):
        raise Reject("card: recipient")
    if not ed25519_verify(sk, self_sig, signed(LABEL_CARD, body)):
        raise Reject("card: self-signature")
    c = dict(kind=kind, generation=gen, created=created, user_id=uid, signing_key=sk,
             recipient=rec, body=body, self_sig=self_sig, prev_sig=prev_sig, raw=b)
    if encode_card_body(c) + self_sig + (prev_sig or b"") != b:
        raise Reject("card: not canonical")
    return c


def is_successor(a, b):
    return (a["user_id"] == b["user_id"] and b["generation"] == a["generation"] + 1
            and b["created"] >= a["created"] and b["prev_sig"] is not None
            and ed25519_verify(a["signing_key"], b["prev_sig"], signed(LABEL_SUCCESSOR, b["body"])))


def valid_history(cards):
    return all(is_successor(cards[i], cards[i + 1]) for i in range(len(cards) - 1))


def fingerprint(c):
    return hashlib.sha256(b"veil/v1/fingerprint\x00" + c["signing_key"] + c["recipient"]).hexdigest()


# ---- safety numbers (4.4) -------------------------------------------------

def safety_digest(c):
    key = c["signing_key"] + c["recipient"]
    d = hashlib.sha512(b"veil/v1/safety-number\x00" + lp8(c["user_id"]) + key).digest()
    for _ in range(5199):
        d = hashlib.sha512(d + key).digest()
    return d[:30]


def safety_digits(digest):
    return "".join("%05d" % (int.from_bytes(digest[i:i + 5], "big") % 100000) for i in range(0, 30, 5))


def safety_number(ca, cb):
    parts = sorted((safety_digits(d), d) for d in (safety_digest(ca), safety_digest(cb)))
    return parts[0][0] + parts[1][0], b"\x01" + parts[0][1] + parts[1][1]


# ---- identity export (4.5) -----------------------------------------------

MAX_EXPORT = 4 << 20
MAX_GENERATIONS = 1024


def padded_export(text, padding):
    """An export vector's input: a comment line of `padding` bytes ("#", then
    "x"s, then LF) before text."""
    if padding <= 0:
        return text
    return "#" + "x" * (padding - 2) + "\n" + text


def parse_export(text):
    if len(text.encode("utf-8")) > MAX_EXPORT:
        raise Reject("export: too large")
    seen_identity, user, gens, pending = False, None, [], None
    lines = text.split("\n")
    for i, ln in enumerate(lines):
        if ln.endswith("\r") and i < len(lines) - 1:  # a CR only before an LF
            ln = ln[:-1]
        if ln == "" or (ln.startswith("#") and not ln.startswith("# veil-")):
            continue
        if pending is not None:
            kind, secret = parse_age_secret_key(ln)
            seed, card = pending
            if kind != card["kind"]:
                raise Reject("export: age key kind differs from card kind")
            if (kind == 2 or mlkem is not None) and age_secret_to_recipient(kind, secret) != card["recipient"]:
                raise Reject("export: age key does not derive the card's recipient")
            gens.append(dict(seed=seed, age_kind=kind, age_secret=secret, age_text=ln, card=card))
            pending = None
            continue
        if ln == "# veil-identity: v1":
            if seen_identity or user is not None or gens:
                raise Reject("export: misplaced veil-identity")
            seen_identity = True
        elif ln.startswith("# veil-identity: "):
            raise Reject("export: unknown version")
        elif ln.startswith("# veil-user: "):
            if not seen_identity or user is not None:
                raise Reject("export: misplaced veil-user")
            user = b64url_decode(ln[len("# veil-user: "):])
            if not valid_user_id(user):
                raise Reject("export: user ID")
        elif ln.startswith("# veil-generation: "):
            if user is None:
                raise Reject("export: generation before user")
            f = ln[len("# veil-generation: "):].split(" ")
            if len(f) != 3 or not f[0].isdigit() or str(int(f[0])) != f[0]:
                raise Reject("export: bad generation line")
            if int(f[0]) != len(gens):
                raise Reject("export: generations out of order")
            if len(gens) >= MAX_GENERATIONS:
                raise Reject("export: too many generations")
            seed = b64url_decode(f[1])
            card = parse_card(b64url_decode(f[2]))
            if len(seed) != 32 or ed25519_public(seed) != card["signing_key"]:
                raise Reject("export: seed does not derive the card's signing key")
            if card["generation"] != len(gens) or card["user_id"] != user:
                raise Reject("export: card does not match its line")
            pending = (seed, card)
        else:
            raise Reject("export: unknown veil- line or stray line: %r" % ln[:40])
    if pending is not None or not gens:
        raise Reject("export: missing age key or no generation")
    if not valid_history([g["card"] for g in gens]):
        raise Reject("export: cards do not form a valid chain")
    return user, gens


# ---- sessions and envelopes (5, 6) ---------------------------------------

def epoch_keys(k):
    return hkdf(k, b"", b"veil/v1/envelope/key"), hkdf(k, b"", b"veil/v1/envelope/commitment")


def pad_len(L):
    if L <= 32:
        return 32
    E = L.bit_length() - 1
    S = E.bit_length()  # floor(log2 E) + 1
    m = (1 << (E - S)) - 1
    return (L + m) & ~m


def pad(pt):
    p = pad_len(len(pt) + 1)
    return pt + b"\x80" + b"\x00" * (p - len(pt) - 1)


def unpad(padded):
    stripped = padded.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise Reject("padding: no 0x80 marker")
    pt = stripped[:-1]
    if len(padded) != pad_len(len(pt) + 1):
        raise Reject("padding: wrong length")
    return pt


def context_bytes(cid, mid, sender, parent, quoted, revision):
    """§6.2: the five strings, each len16-prefixed, then u32(revision)."""
    for f in (cid, mid, sender):
        if not f:
            raise Reject("context: empty field")
    for f in (cid, mid, sender, parent, quoted):
        if len(f) > 1024:
            raise Reject("context: field too long")
    if not 0 <= revision < 1 << 32:
        raise Reject("context: revision out of range")
    return lp16(cid) + lp16(mid) + lp16(sender) + lp16(parent) + lp16(quoted) + struct.pack(">I", revision)


def seal_envelope(session_id, epoch, k, sender_seed, sender_gen, ctx, pt, nonce):
    mk, com = epoch_keys(k)
    header = b"\x01" + session_id + struct.pack(">II", epoch, sender_gen) + com + nonce
    ad = header + ctx
    padded = pad(pt)
    sig = ed25519_sign(sender_seed, signed(LABEL_ENVELOPE, ad + padded))
    return header + xchacha20poly1305_seal(mk, nonce, padded + sig, ad)


def open_envelope(env, ctx_fields, session, cards, min_generation=0):
    """session: dict(id, cid, keys={epoch: K}); cards: {(user_id, generation): card};
    min_generation: the oldest generation of the sender the log lets sign the
    epoch (section 10.4)."""
    if len(env) < 161 + 32 or env[0] != 1:
        raise Reject("envelope: version/size")
    sid, epoch, gen = env[1:17], u32(env[17:21]), u32(env[21:25])
    if gen < min_generation:
        raise Reject("envelope: the sender's generation is retired for this epoch")
    com, nonce = env[25:57], env[57:81]
    cid, mid, sender = ctx_fields[:3]
    if not ct_eq(sid, session["id"]) or cid != session["cid"]:
        raise Reject("envelope: session")
    if epoch not in session["keys"]:
        raise Reject("envelope: epoch")
    mk, want = epoch_keys(session["keys"][epoch])
    if not ct_eq(want, com):
        raise Reject("envelope: commitment")
    card = cards.get((sender, gen))
    if card is None:
        raise Reject("envelope: no card")
    ad = env[:81] + context_bytes(*ctx_fields)
    inner = xchacha20poly1305_open(mk, nonce, env[81:], ad)
    padded, sig = inner[:-64], inner[-64:]
    if not ed25519_verify(card["signing_key"], sig, signed(LABEL_ENVELOPE, ad + padded)):
        raise Reject("envelope: signature")
    return unpad(padded), len(padded)


class Stale(Exception):
    """§6.5: an authenticated envelope older than the revision kept."""


class Equivocation(Exception):
    """§6.5: an authenticated envelope of the revision kept, with other bytes."""


class RevisionReader:
    """§6.5's revision rule over open_envelope: per (session ID, message ID),
    the highest revision opened and the SHA-256 of that envelope."""

    def __init__(self):
        self.kept = {}

    def open(self, env, ctx_fields, session, cards):
        pt = open_envelope(env, ctx_fields, session, cards)  # authenticate first
        key, rev, h = (session["id"], ctx_fields[1]), ctx_fields[5], hashlib.sha256(env).digest()
        kept = self.kept.get(key)
        if kept is not None:
            if rev < kept[0]:
                raise Stale("revision %d after %d" % (rev, kept[0]))
            if rev == kept[0] and h != kept[1]:
                raise Equivocation("two envelopes of revision %d" % rev)
        if kept is None or rev > kept[0]:
            self.kept[key] = (rev, h)
        return pt


def envelope_text(env):
    return "veil1:" + b64url_encode(env)


def parse_envelope_text(s):
    if not s.startswith("veil1:"):
        raise Reject("text: prefix")
    return b64url_decode(s[6:])


def max_plaintext(limit):
    n = -1
    while True:
        env = 161 + pad_len(n + 2)
        if 6 + (4 * env + 2) // 3 > limit:
            return n
        n += 1


# ---- grants (7) ------------------------------------------------------------

MAX_GRANT = 4096  # bytes, inclusive (section 7)


def encode_grant_unsigned(g):
    return (b"\x01" + g["session_id"] + struct.pack(">I", g["epoch"]) + g["epoch_key"]
            + lp16(g["channel_cid"]) + lp8(g["grantee"]) + struct.pack(">I", g["grantee_generation"])
            + lp8(g["granter"]) + struct.pack(">I", g["granter_generation"]))


def _utf8(b):
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_grant_payload(b):
    try:
        if b[0] != 1:
            raise Reject("grant: version")
        off = 1
        sid = b[off:off + 16]; off += 16
        epoch = u32(b[off:off + 4]); off += 4
        key = b[off:off + 32]; off += 32
        n = u16(b[off:off + 2]); off += 2
        cid = b[off:off + n]; off += n
        n = b[off]; off += 1
        grantee = b[off:off + n]; off += n
        ge_gen = u32(b[off:off + 4]); off += 4
        n = b[off]; off += 1
        granter = b[off:off + n]; off += n
        gr_gen = u32(b[off:off + 4]); off += 4
        sig = b[off:off + 64]; off += 64
    except (IndexError, struct.error):
        raise Reject("grant: truncated")
    if off != len(b) or len(sig) != 64 or len(key) != 32 or len(sid) != 16:
        raise Reject("grant: size")
    if sid == bytes(16):
        raise Reject("grant: zero session ID")
    if not 1 <= len(cid) <= 1024 or not _utf8(cid):
        raise Reject("grant: channel CID")
    if not grantee or not granter:
        raise Reject("grant: empty grantee or granter")
    return dict(session_id=sid, epoch=epoch, epoch_key=key, channel_cid=cid, grantee=grantee,
                grantee_generation=ge_gen, granter=granter, granter_generation=gr_gen,
                signature=sig, unsigned=b[:-64])


def open_grant(data, export_text, granter_cards, want):
    """want: dict(session_id, epoch, channel_cid). Returns the parsed payload."""
    if len(data) > MAX_GRANT:
        raise Reject("grant: too large")
    user, gens = parse_export(export_text)
    ids = [(g["age_kind"], g["age_secret"]) for g in gens]
    payload, stanzas, idx = age_decrypt(data, ids)
    if len(stanzas) != 1:
        raise Reject("grant: not exactly one stanza")
    g = parse_grant_payload(payload)
    # Any of our generations may open the file (section 7); the grantee
    # generation must not be newer than our newest.
    if g["grantee"] != user or g["grantee_generation"] > gens[-1]["card"]["generation"]:
        raise Reject("grant: grantee is not us")
    card = granter_cards.get((g["granter"], g["granter_generation"]))
    if card is None or not ed25519_verify(card["signing_key"], g["signature"],
                                          signed(LABEL_GRANT, g["unsigned"])):
        raise Reject("grant: signature")
    if (g["session_id"], g["epoch"], g["channel_cid"]) != (want["session_id"], want["epoch"], want["channel_cid"]):
        raise Reject("grant: not the grant asked for")
    if g["granter_generation"] < want.get("min_granter_generation", 0):
        raise Reject("grant: the granter's generation is retired for this epoch")
    g["_stanza_type"] = stanzas[0][0][0]
    g["_identity_generation"] = gens[idx]["card"]["generation"]
    return g


# ---- attachments (8) -------------------------------------------------------

def attachment_keys(k, n):
    return (hkdf(k, n, b"veil/v1/attachment/payload-key"),
            hkdf(k, n, b"veil/v1/attachment/commitment"))


def attachment_seal(k, n, pt):
    p, c = attachment_keys(k, n)
    return b"VEILATT1" + n + c + stream_seal(p, pt)


def attachment_open(k, data, trace=None):
    if len(data) < 56 + TAG or data[:8] != b"VEILATT1":
        raise Reject("attachment: header")
    n, c = data[8:24], data[24:56]
    p, want = attachment_keys(k, n)
    if not ct_eq(want, c):
        raise Reject("attachment: commitment")
    return stream_open(p, data[56:], trace)


def vector_plaintext(seed, length):
    """Test-vector plaintext: SHA-256(seed || u64(i)) blocks, truncated (found by inspection)."""
    out = bytearray()
    i = 0
    while len(out) < length:
        out += hashlib.sha256(seed + struct.pack(">Q", i)).digest()
        i += 1
    return bytes(out[:length])


# ---- membership log (10) ---------------------------------------------------

LABEL_LOG = b"veil/v1/log"
LABEL_LOG_RECORD = b"veil/v1/log/record"
LABEL_LOG_ROSTER = b"veil/v1/log/roster"
LOG_GENESIS, LOG_CHANGE = 1, 2
OP_ADD, OP_REMOVE, OP_ROLE = 1, 2, 3
ROLE_MEMBER, ROLE_ADMIN = 0, 1
MEMBERS_ADD, MEMBERS_REMOVE = 0x01, 0x02
LOG_MAX_MEMBERS = 10000
LOG_MAX_OPS = 1000
LOG_MAX_EPOCHS = 1 << 20
LOG_MAX_GENESIS = 4 * 1024 * 1024
LOG_MAX_CHANGE = 1024 * 1024
LOG_MAX_CID = 1024
LOG_SIG = 64


class LogReject(Reject):
    """A membership-log reader's rejection, tagged with the subsection whose
    rule the input breaks ("10.1" .. "10.4")."""

    def __init__(self, section, msg):
        super().__init__("§%s: %s" % (section, msg))
        self.section = section


def log_hash(raw):
    """H(r), section 10.1."""
    return hashlib.sha256(LABEL_LOG_RECORD + b"\x00" + raw).digest()


class _Reader:
    """Reads the fields of a record in order; running short is a 10.2 error."""

    def __init__(self, b):
        self.b, self.off = b, 0

    def take(self, n):
        if self.off + n > len(self.b):
            raise LogReject("10.2", "truncated")
        out = self.b[self.off:self.off + n]
        self.off += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return u16(self.take(2))

    def u32(self):
        return u32(self.take(4))

    def u64(self):
        return u64(self.take(8))

    def lp8(self):
        return self.take(self.u8())

    def lp16(self):
        return self.take(self.u16())


def _member_entry(r):
    return dict(user=r.lp8(), gen=r.u32(), fp=r.take(32), role=r.u8())


def _encode_member(m):
    return lp8(m["user"]) + struct.pack(">I", m["gen"]) + m["fp"] + bytes([m["role"]])


def _check_member(m):
    if not valid_user_id(m["user"]):
        raise LogReject("10.1", "a member entry's user ID is invalid")
    if m["gen"] >= MAX_GENERATIONS:
        raise LogReject("10.1", "an anchor generation of 1,024 or more")
    if m["role"] not in (ROLE_MEMBER, ROLE_ADMIN):
        raise LogReject("10.1", "unknown role %d in a member entry" % m["role"])


def _strictly_ascending(users):
    return all(users[i] < users[i + 1] for i in range(len(users) - 1))


def encode_log_record(rec):
    """The encoding of a parsed record (section 10.2), signature included."""
    if rec["type"] == LOG_GENESIS:
        body = (bytes([1, LOG_GENESIS]) + rec["nonce"] + lp16(rec["channel_cid"]) + lp8(rec["creator"])
                + struct.pack(">IQB", rec["creator_gen"], rec["time"], rec["policy"]) + rec["commitment"]
                + struct.pack(">H", len(rec["members"])) + b"".join(_encode_member(m) for m in rec["members"]))
    else:
        body = (bytes([1, LOG_CHANGE]) + rec["session_id"] + struct.pack(">I", rec["seq"]) + rec["prev"]
                + lp8(rec["actor"]) + struct.pack(">IQBI", rec["actor_gen"], rec["time"], rec["flags"], rec["epoch"])
                + (rec["commitment"] if rec["flags"] & 1 else b"") + struct.pack(">H", len(rec["ops"])))
        for op in rec["ops"]:
            if op["type"] == OP_ADD:
                body += bytes([OP_ADD]) + _encode_member(op)
            elif op["type"] == OP_REMOVE:
                body += bytes([OP_REMOVE]) + lp8(op["user"])
            else:
                body += bytes([OP_ROLE]) + lp8(op["user"]) + bytes([op["role"]])
        body += rec["roster_digest"]
    return body + rec["signature"]


def parse_log_record(raw):
    """Parse one record (sections 10.1, 10.2): first the fields in order,
    then their values, then the canonical re-encoding."""
    if len(raw) > LOG_MAX_GENESIS:
        raise LogReject("10.2", "larger than 4 MiB")
    r = _Reader(raw)
    version, typ = r.u8(), r.u8()
    if version != 1:
        raise LogReject("10.2", "unknown version %d" % version)
    if typ == LOG_GENESIS:
        rec = dict(type=typ, nonce=r.take(16), channel_cid=r.lp16(), creator=r.lp8(), creator_gen=r.u32(),
                   time=r.u64(), policy=r.u8(), commitment=r.take(32))
        n = r.u16()
        rec["members"] = [_member_entry(r) for _ in range(n)]
    elif typ == LOG_CHANGE:
        if len(raw) > LOG_MAX_CHANGE:
            raise LogReject("10.2", "a change larger than 1 MiB")
        rec = dict(type=typ, session_id=r.take(16), seq=r.u32(), prev=r.take(32), actor=r.lp8(),
                   actor_gen=r.u32(), time=r.u64(), flags=r.u8(), epoch=r.u32())
        rec["commitment"] = r.take(32) if rec["flags"] & 1 else None
        n = r.u16()
        if n > LOG_MAX_OPS:
            raise LogReject("10.2", "more than 1,000 operations")
        ops = []
        for _ in range(n):
            t = r.u8()
            if t == OP_ADD:
                op = _member_entry(r)
            elif t == OP_REMOVE:
                op = dict(user=r.lp8())
            elif t == OP_ROLE:
                op = dict(user=r.lp8(), role=r.u8())
            else:
                raise LogReject("10.2", "unknown operation type %d" % t)
            op["type"] = t
            ops.append(op)
        rec["ops"] = ops
        rec["roster_digest"] = r.take(32)
    else:
        raise LogReject("10.2", "unknown record type %d" % typ)
    rec["signature"] = r.take(LOG_SIG)
    if r.off != len(raw):
        raise LogReject("10.2", "trailing bytes")
    rec["body"], rec["raw"], rec["hash"] = raw[:-LOG_SIG], raw, log_hash(raw)

    # the values
    if typ == LOG_GENESIS:
        cid = rec["channel_cid"]
        if not 1 <= len(cid) <= LOG_MAX_CID or b"\x00" in cid or not _utf8(cid):
            raise LogReject("10.2", "bad channel CID")
        if not valid_user_id(rec["creator"]):
            raise LogReject("10.1", "the creator's user ID is invalid")
        if rec["policy"] & ~(MEMBERS_ADD | MEMBERS_REMOVE):
            raise LogReject("10.2", "unknown policy bits")
        if not 1 <= len(rec["members"]) <= LOG_MAX_MEMBERS:
            raise LogReject("10.2", "a genesis has 1 to 10,000 members")
        for m in rec["members"]:
            _check_member(m)
        if not _strictly_ascending([m["user"] for m in rec["members"]]):
            raise LogReject("10.2", "members not strictly ascending by user ID")
        me = [m for m in rec["members"] if m["user"] == rec["creator"]]
        if not me or me[0]["role"] != ROLE_ADMIN or me[0]["gen"] != rec["creator_gen"]:
            raise LogReject("10.2", "the creator is not an admin member anchored at its creator generation")
    else:
        if not valid_user_id(rec["actor"]):
            raise LogReject("10.1", "the actor's user ID is invalid")
        if rec["flags"] & ~1:
            raise LogReject("10.2", "unknown flag bits")
        for op in rec["ops"]:
            if op["type"] == OP_ADD:
                _check_member(op)
            elif not valid_user_id(op["user"]):
                raise LogReject("10.1", "an operation's user ID is invalid")
            elif op["type"] == OP_ROLE and op["role"] not in (ROLE_MEMBER, ROLE_ADMIN):
                raise LogReject("10.2", "unknown role %d in a set-role operation" % op["role"])
        if not _strictly_ascending([op["user"] for op in rec["ops"]]):
            raise LogReject("10.2", "operations not strictly ascending by user ID")
    if encode_log_record(rec) != raw:
        raise LogReject("10.2", "not the canonical encoding")
    return rec


def roster_digest(policy, roster):
    """Section 10.1; roster: user -> dict(gen, fp, role)."""
    users = sorted(roster)
    return hashlib.sha256(LABEL_LOG_ROSTER + b"\x00" + bytes([policy]) + struct.pack(">I", len(users))
                          + b"".join(_encode_member(dict(roster[u], user=u)) for u in users)).digest()


def _log_signer_cards(directory, user, anchor, gen):
    """The signer's cards from its anchor's generation to gen, checked
    (section 10.4 rule 2); returns the card of gen."""
    if gen < anchor["gen"]:
        raise LogReject("10.4", "signed with a generation older than the anchor")
    have = directory.get(user, [])
    if gen >= len(have):
        raise LogReject("10.4", "the directory has no card of generation %d" % gen)
    cards = have[anchor["gen"]:gen + 1]
    if any(c["user_id"] != user for c in cards) or [c["generation"] for c in cards] != list(range(anchor["gen"], gen + 1)):
        raise LogReject("10.4", "the cards are not the signer's of those generations")
    if bytes.fromhex(fingerprint(cards[0])) != anchor["fp"]:
        raise LogReject("10.4", "the first card is not the anchored one")
    if not valid_history(cards):
        raise LogReject("10.4", "the cards do not chain from the anchor")
    return cards[-1]


def log_genesis(raw, session_id, channel_cid, directory):
    """Section 10.4 rule 1. directory: user -> cards by generation; the
    creator's card of the creator generation is the trusted one."""
    rec = parse_log_record(raw)
    if rec["type"] != LOG_GENESIS:
        raise LogReject("10.4", "the first record is not a genesis")
    if log_hash(raw)[:16] != session_id:
        raise LogReject("10.4", "the genesis does not hash to the session ID")
    if rec["channel_cid"] != channel_cid:
        raise LogReject("10.4", "the genesis names another channel")
    creator = [m for m in rec["members"] if m["user"] == rec["creator"]][0]
    card = _log_signer_cards(directory, rec["creator"], creator, rec["creator_gen"])
    if not ed25519_verify(card["signing_key"], rec["signature"], signed(LABEL_LOG, rec["body"])):
        raise LogReject("10.4", "bad genesis signature")
    roster = {m["user"]: dict(gen=m["gen"], fp=m["fp"], role=m["role"]) for m in rec["members"]}
    signed_gens = {rec["creator"]: rec["creator_gen"]}
    return dict(session_id=session_id, channel_cid=channel_cid, policy=rec["policy"], seq=0, head=rec["hash"],
                epoch=0, commitments=[rec["commitment"]], roster=roster, readers=set(roster),
                signed=signed_gens, min_generations=[dict(signed_gens)],
                last_signer=(rec["creator"], rec["creator_gen"], []))


def log_apply(state, raw, directory):
    """Section 10.4 rule 2 and the rules of 10.3: the state after raw."""
    rec = parse_log_record(raw)
    if rec["type"] != LOG_CHANGE:
        raise LogReject("10.4", "a genesis after the first record")
    if rec["session_id"] != state["session_id"]:
        raise LogReject("10.4", "another session's ID")
    if rec["seq"] != state["seq"] + 1:
        raise LogReject("10.4", "sequence number %d after %d" % (rec["seq"], state["seq"]))
    if rec["prev"] != state["head"]:
        raise LogReject("10.4", "the previous hash is not the head")
    roster, actor = state["roster"], rec["actor"]
    if actor not in roster:
        raise LogReject("10.4", "the actor is not a member")
    if rec["actor_gen"] < state["signed"].get(actor, 0):
        raise LogReject("10.4", "signed with generation %d, retired by the actor's record signed with generation %d"
                        % (rec["actor_gen"], state["signed"][actor]))
    card = _log_signer_cards(directory, actor, roster[actor], rec["actor_gen"])
    if not ed25519_verify(card["signing_key"], rec["signature"], signed(LABEL_LOG, rec["body"])):
        raise LogReject("10.4", "bad signature")
    after, added = log_rules(state, rec)
    new_epoch = bool(rec["flags"] & 1)
    st = dict(state, seq=rec["seq"], head=rec["hash"], epoch=rec["epoch"], roster=after,
              last_signer=(actor, rec["actor_gen"], added))
    st["signed"] = dict(state["signed"])
    st["signed"][actor] = max(rec["actor_gen"], state["signed"].get(actor, 0))
    if new_epoch:
        st["commitments"] = state["commitments"] + [rec["commitment"]]
        st["min_generations"] = state["min_generations"] + [dict(st["signed"])]
        st["readers"] = set(after)
    else:
        st["readers"] = state["readers"] | set(added)
    return st


def log_rules(state, rec):
    """Section 10.3, rules 1 to 8: the roster after rec and the users it adds."""
    roster, actor, ops = state["roster"], rec["actor"], rec["ops"]
    policy, new_epoch = state["policy"], bool(rec["flags"] & 1)
    if actor not in roster:  # 1
        raise LogReject("10.3", "the actor is not a member")
    after, added = {u: dict(m) for u, m in roster.items()}, []
    for op in ops:  # 2
        u = op["user"]
        if op["type"] == OP_ADD:
            if u in roster:
                raise LogReject("10.3", "adds a member")
            after[u] = dict(gen=op["gen"], fp=op["fp"], role=op["role"])
            added.append(u)
        elif u not in roster:
            raise LogReject("10.3", "removes or sets the role of a non-member")
        elif op["type"] == OP_REMOVE:
            del after[u]
        else:
            if op["role"] == roster[u]["role"]:
                raise LogReject("10.3", "a set-role that does not change the role")
            after[u]["role"] = op["role"]
    removals = [op for op in ops if op["type"] == OP_REMOVE]
    if any(op["user"] == actor for op in removals) and (len(ops) != 1 or new_epoch):  # 3
        raise LogReject("10.3", "a leave with other operations or a new epoch")
    if any(op["user"] != actor for op in removals) and not new_epoch:
        raise LogReject("10.3", "a removal without a new epoch")
    if roster[actor]["role"] != ROLE_ADMIN:  # 4
        for op in ops:
            if op["type"] == OP_ADD and (op["role"] != ROLE_MEMBER or not policy & MEMBERS_ADD):
                raise LogReject("10.3", "a member who is not an admin adds, as the policy forbids")
            if op["type"] == OP_REMOVE and op["user"] != actor and not policy & MEMBERS_REMOVE:
                raise LogReject("10.3", "a member who is not an admin removes, as the policy forbids")
        roles = [op for op in ops if op["type"] == OP_ROLE]
        if roles:
            admins = [u for u, m in after.items() if m["role"] == ROLE_ADMIN]
            if len(roles) != 1 or roles[0]["role"] != ROLE_ADMIN or admins != [roles[0]["user"]]:
                raise LogReject("10.3", "a role change by a member who is not an admin, not a forced promotion")
    if not 1 <= len(after) <= LOG_MAX_MEMBERS or not any(m["role"] == ROLE_ADMIN for m in after.values()):  # 5
        raise LogReject("10.3", "the roster after the record is empty, too large or has no admin")
    want = state["epoch"] + (1 if new_epoch else 0)  # 6
    if rec["epoch"] != want or rec["epoch"] >= LOG_MAX_EPOCHS:
        raise LogReject("10.3", "epoch %d, want %d" % (rec["epoch"], want))
    if not ops and not new_epoch:  # 7
        raise LogReject("10.3", "no operation and no new epoch")
    if rec["roster_digest"] != roster_digest(policy, after):  # 8
        raise LogReject("10.3", "the roster digest is not the roster's")
    return after, added


def log_check_floor(heads, floor):
    """Section 10.4 rule 4. heads: the hash of each record, by sequence number."""
    if len(heads) <= floor["seq"]:
        raise LogReject("10.4", "the log ends before the floor")
    if heads[floor["seq"]].hex() != floor["head"]:
        raise LogReject("10.4", "another record at the floor's sequence number (a fork)")


def log_check_pinned(state, fresh, pins):
    """Section 10.4 rule 5. fresh: (user, generation, users added; none for
    a genesis) of each record the reader verifies for the first time, in
    log order; state: after the last; pins: user -> the newest generation
    the reader trusts."""
    last = {}
    for i, (user, _, _) in enumerate(fresh):
        last[user] = i
    stale = {u for u, i in last.items() if u in pins and pins[u] > fresh[i][1]}
    # A record vouches if its signer is not stale and was not made a member,
    # when it signed, by a record of a stale or tainted signer.
    tainted, vouches = {}, []
    for user, _, added in fresh:
        bad = user in stale or tainted.get(user, False)
        vouches.append(not bad)
        for a in added:
            tainted[a] = bad
    for user in stale:
        i = last[user]
        if user not in state["roster"] and any(vouches[i + 1:]):
            continue
        raise LogReject("10.4", "%r last signed with generation %d, older than the trusted %d, and no other member vouches"
                        % (user, fresh[i][1], pins[user]))


def log_replay_pinned(lv, v):
    """Read a `pinned` entry of memberlog.json: every record is new to the reader."""
    directory = log_directory(lv["cards"])
    chain = lv["chains"][v["chain"]]
    sid, cid = bytes.fromhex(chain["session_id"]), chain["channel_cid"].encode("utf-8")
    state, fresh = None, []
    for i, r in enumerate(chain["records"][:v["prefix"]]):
        raw = bytes.fromhex(r["record"])
        try:
            state = log_genesis(raw, sid, cid, directory) if i == 0 else log_apply(state, raw, directory)
        except Reject as e:
            raise PrefixRejected("record %d of the valid prefix: %s" % (i, e))
        fresh.append(state["last_signer"])
    log_check_pinned(state, fresh, {u.encode("utf-8"): g for u, g in v["pins"].items()})
    return state


def log_state_vector(st):
    """A state in the form memberlog.json records it."""
    users = sorted(st["roster"])
    return dict(
        signed={u.decode("utf-8"): g for u, g in st["signed"].items()},
        min_generations=[{u.decode("utf-8"): g for u, g in m.items() if g > 0} for m in st["min_generations"]],
        seq=st["seq"], head=st["head"].hex(), epoch=st["epoch"], commitments=[c.hex() for c in st["commitments"]],
        roster=[dict(user_id=u.decode("utf-8"), anchor_generation=st["roster"][u]["gen"],
                     anchor_fingerprint=st["roster"][u]["fp"].hex(),
                     role="admin" if st["roster"][u]["role"] == ROLE_ADMIN else "member") for u in users],
        readers=[u.decode("utf-8") for u in sorted(st["readers"])],
        roster_digest=roster_digest(st["policy"], st["roster"]).hex())


def log_directory(cards, override=None):
    d = {}
    for m in (cards, override or {}):
        for user, hs in m.items():
            d[user.encode("utf-8")] = [parse_card(bytes.fromhex(h)) for h in hs]
    return d


class PrefixRejected(Exception):
    """A valid prefix of a chain was rejected: the vector, or this reader, is wrong."""


def log_replay_invalid(lv, v):
    """Read the log an `invalid` entry of memberlog.json describes."""
    directory = log_directory(lv["cards"], v.get("cards"))
    chain = lv["chains"][v["chain"]]
    raws = [bytes.fromhex(r["record"]) for r in chain["records"][:v["prefix"]]]
    bad = None
    if v.get("record"):
        bad = len(raws)
        raws.append(bytes.fromhex(v["record"]))
    if v["prefix"] == 0:
        sid, cid = bytes.fromhex(v["session_id"]), v["channel_cid"].encode("utf-8")
    else:
        sid, cid = bytes.fromhex(chain["session_id"]), chain["channel_cid"].encode("utf-8")
    state, heads = None, []
    for i, raw in enumerate(raws):
        try:
            state = log_genesis(raw, sid, cid, directory) if i == 0 else log_apply(state, raw, directory)
        except Reject as e:
            if i != bad:
                raise PrefixRejected("record %d of the valid prefix: %s" % (i, e))
            raise
        heads.append(state["head"])
    if v.get("floor"):
        log_check_floor(heads, v["floor"])
    return state


# --------------------------------------------------------------------------
# Test driver

class Runner:
    def __init__(self):
        self.groups = []
        self.failures = 0

    def group(self, name):
        self.cur = [name, 0, 0]
        self.groups.append(self.cur)

    def check(self, cond, what):
        self.cur[1] += 1
        if not cond:
            self.cur[2] += 1
            self.failures += 1
            print("FAIL [%s] %s" % (self.cur[0], what))
        return cond

    def eq(self, got, want, what):
        if got != want:
            return self.check(False, "%s: got %r, want %r" % (what, _short(got), _short(want)))
        return self.check(True, what)

    def ok(self, fn, what):
        try:
            r = fn()
        except Exception as e:  # noqa: BLE001
            self.check(False, "%s: %s: %s" % (what, type(e).__name__, e))
            return None
        self.check(True, what)
        return r

    def rejects(self, fn, what, section=None):
        """fn must raise Reject; with section, a LogReject of that section."""
        try:
            fn()
        except Reject as e:
            if section is not None and getattr(e, "section", None) != section:
                return self.check(False, "%s: rejected under another rule than section %s: %s" % (what, section, e))
            if VERBOSE:
                print("  rejected as expected: %s: %s" % (what, e))
            return self.check(True, what)
        except Exception as e:  # noqa: BLE001
            return self.check(False, "%s: expected a rejection, got %s: %s" % (what, type(e).__name__, e))
        return self.check(False, "%s: accepted a tampered input" % what)

    def report(self):
        for name, n, bad in self.groups:
            print("%-34s %4d checks  %s" % (name, n, "ok" if not bad else "%d FAILED" % bad))


def _short(x):
    if isinstance(x, (bytes, bytearray)):
        x = bytes(x).hex()
    if isinstance(x, str) and len(x) > 80:
        return x[:40] + "..." + x[-16:]
    return x


def flip(b, i, mask=0x01):
    b = bytearray(b)
    b[i] ^= mask
    return bytes(b)


def load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
        return json.load(f)


def iso_to_unix(s):
    return int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


def main():
    R = Runner()
    if mlkem is None:
        print("note: this cryptography build has no ML-KEM; hybrid keys and mlkem768x25519 stanzas are skipped")

    # ---------------------------------------------------------------- self-tests
    R.group("primitives (self-tests)")
    R.eq(hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927")).hex(),
         "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc",
         "HChaCha20 (draft-irtf-cfrg-xchacha section 2.2.1)")
    for L, want in [(1, 32), (32, 32), (33, 36), (101, 104), (1000, 1024), (3584, 3584), (3585, 3712)]:
        R.eq(pad_len(L), want, "Padme P(%d)" % L)
    R.eq(max_plaintext(5000), 3583, "section 6.6: MaxPlaintext(5000)")
    R.eq(81 + 64 + 16, 161, "section 6.1: envelope overhead")
    R.eq(bech32_decode(bech32_encode("age", b"\x01" * 32))[1], b"\x01" * 32, "bech32 round trip")

    # ---------------------------------------------------------------- Ed25519
    R.group("ed25519 (ZIP 215)")
    R.eq(ed_encode(ED_B).hex(), "5866666666666666666666666666666666666666666666666666666666666666",
         "the base point B encodes as RFC 8032 gives it")
    R.check(ed_is_identity(ed_mul_base(ED_L)) and ed_is_identity(ed_mul(ED_L, ED_B)), "[L]B is the identity")
    R.check(ed_encode(ed_mul(12345, ED_B)) == ed_encode(ed_mul_base(12345)), "the two scalar multiplications agree")
    disagree = 0
    for i, v in enumerate(load("ed25519.json")):
        tag = "ed25519[%d] %s" % (i, v["comment"])
        pub, msg, sig = (bytes.fromhex(v[f]) for f in ("public_key", "message", "signature"))
        R.eq(ed25519_verify(pub, sig, msg), v["valid"], tag + ": ZIP 215 verification")
        R.eq(ed25519_verify_cofactorless(pub, sig, msg), v["cofactorless"], tag + ": cofactorless verification")
        R.eq(valid_signing_key(pub), v["card_key"], tag + ": a card may carry the key")
        disagree += v["valid"] != v["cofactorless"]
    R.check(disagree > 0, "ed25519.json has signatures on which the cofactored and cofactorless rules disagree")

    # ---------------------------------------------------------------- identities
    ids = load("identities.json")
    cards_by = {}
    R.group("identities: cards")
    for i, v in enumerate(ids):
        tag = "identities[%d] %s gen %d" % (i, v["user_id"], v["generation"])
        raw = bytes.fromhex(v["card"])
        c = R.ok(lambda: parse_card(raw), tag + ": card parses and self-signature verifies")
        if c is None:
            continue
        cards_by[(c["user_id"], c["generation"])] = c
        kind = {"hybrid": 1, "x25519": 2}[v["kind"]]
        R.eq(c["user_id"], v["user_id"].encode(), tag + ": user ID")
        R.eq(c["kind"], kind, tag + ": kind")
        R.eq(c["generation"], v["generation"], tag + ": generation")
        R.eq(c["created"], iso_to_unix(v["created"]), tag + ": created")
        seed = bytes.fromhex(v["ed25519_seed"])
        R.eq(ed25519_public(seed).hex(), v["signing_public_key"], tag + ": seed derives signing key")
        R.eq(c["signing_key"].hex(), v["signing_public_key"], tag + ": card signing key")
        hrp, rec = R.ok(lambda: bech32_decode(v["recipient"]), tag + ": recipient bech32") or ("", b"")
        R.eq(hrp, "age1pq" if kind == 1 else "age", tag + ": recipient HRP")
        R.eq(rec, c["recipient"], tag + ": card recipient = bech32 recipient")
        R.eq(bech32_encode(hrp, rec), v["recipient"], tag + ": recipient re-encodes")
        akind, asec = R.ok(lambda: parse_age_secret_key(v["age_secret_key"]), tag + ": age secret key") or (0, b"")
        R.eq(akind, kind, tag + ": age secret key HRP matches kind")
        R.eq(bech32_encode("AGE-SECRET-KEY-PQ-" if kind == 1 else "AGE-SECRET-KEY-", asec, upper=True),
             v["age_secret_key"], tag + ": age secret key re-encodes")
        if kind == 2 or mlkem is not None:
            R.eq(age_secret_to_recipient(kind, asec), c["recipient"], tag + ": age key derives recipient")
        R.eq(len(seed + asec), 64, tag + ": key material M is 64 bytes")
        R.eq(fingerprint(c), v["fingerprint"], tag + ": fingerprint")
        R.eq(encode_card_body(c) + c["self_sig"] + (c["prev_sig"] or b""), raw, tag + ": canonical re-encoding")
        R.eq(ed25519_sign(seed, signed(LABEL_CARD, c["body"])), c["self_sig"],
             tag + ": self-signature reproduced (deterministic Ed25519)")
        R.eq(c["prev_sig"] is not None, v["generation"] > 0, tag + ": prev_sig present iff generation > 0")

    R.group("identities: card negatives")
    for i, v in enumerate(ids):
        tag = "identities[%d]" % i
        raw = bytes.fromhex(v["card"])
        gen = v["generation"]
        R.rejects(lambda: parse_card(raw + b"\x00"), tag + ": trailing byte")
        R.rejects(lambda: parse_card(raw[:-1]), tag + ": truncated")
        R.rejects(lambda: parse_card(b"\x02" + raw[1:]), tag + ": version 2")
        R.rejects(lambda: parse_card(raw[:1] + b"\x03" + raw[2:]), tag + ": kind 3")
        R.rejects(lambda: parse_card(flip(raw, 10)), tag + ": created changed (self-signature)")
        R.rejects(lambda: parse_card(flip(raw, 15)), tag + ": user ID changed (self-signature)")
        R.rejects(lambda: parse_card(flip(raw, len(raw) - 70 - (64 if gen else 0))), tag + ": recipient changed")
        R.rejects(lambda: parse_card(flip(raw, len(raw) - 1 - (64 if gen else 0))), tag + ": self-signature changed")
        R.rejects(lambda: parse_card(raw[:14] + b"\x00" + raw[15:]), tag + ": user ID length 0")
        R.rejects(lambda: parse_card(raw[:15] + b"\x07" + raw[16:]), tag + ": control character in user ID")
        R.rejects(lambda: parse_card(raw[:6] + struct.pack(">Q", MAX_CREATED + 1) + raw[14:]),
                  tag + ": created after year 9999")
        if gen == 0:
            R.rejects(lambda: parse_card(raw + b"\x00" * 64), tag + ": generation 0 with a prev_sig")
        else:
            R.rejects(lambda: parse_card(raw[:-64]), tag + ": generation 1 without prev_sig")
        c = cards_by.get((v["user_id"].encode(), gen))
        if c:
            n = len(c["user_id"])
            roff = 15 + n + 32
            other = 32 if c["kind"] == 1 else 1216
            R.rejects(lambda: parse_card(raw[:roff] + struct.pack(">H", other) + raw[roff + 2:]),
                      tag + ": recipient length of the other kind")
            R.rejects(lambda: parse_card(raw[:roff] + struct.pack(">H", 33) + raw[roff + 2:]),
                      tag + ": recipient length 33")

    for i, v in enumerate(ids):
        c = cards_by.get((v["user_id"].encode(), v["generation"]))
        if not c or c["kind"] != 1 or mlkem is None:
            continue
        seed = bytes.fromhex(v["ed25519_seed"])
        rec = bytearray(c["recipient"])
        rec[0], rec[1] = 0xFF, rec[1] | 0x0F  # first ML-KEM coefficient = 4095 >= q
        body = encode_card_body(dict(c, recipient=bytes(rec)))
        bad = body + ed25519_sign(seed, signed(LABEL_CARD, body)) + (c["prev_sig"] or b"")
        R.rejects(lambda: parse_card(bad), "identities[%d]: self-signed card with an invalid ML-KEM key" % i)

    R.group("identities: chains")
    users = sorted({k[0] for k in cards_by})
    for u in users:
        hist = [cards_by[(u, g)] for g in sorted(g for (uu, g) in cards_by if uu == u)]
        R.check(valid_history(hist), "%s: generations 0..%d form a valid chain" % (u.decode(), len(hist) - 1))
        if len(hist) >= 2:
            a, b = hist[0], hist[1]
            R.check(not is_successor(b, a), "%s: reversed order is not a chain" % u.decode())
            R.check(not is_successor(a, a), "%s: a card is not its own successor" % u.decode())
            R.check(ed25519_verify(a["signing_key"], b["prev_sig"], signed(LABEL_SUCCESSOR, b["body"])),
                    "%s: prev_sig under veil/v1/card-successor" % u.decode())
            R.check(not ed25519_verify(a["signing_key"], b["prev_sig"], signed(LABEL_CARD, b["body"])),
                    "%s: prev_sig is not valid under veil/v1/card (domain separation)" % u.decode())
            b2 = dict(b, prev_sig=flip(b["prev_sig"], 0))
            R.check(not is_successor(a, b2), "%s: tampered prev_sig breaks the chain" % u.decode())
    if len(users) >= 2:
        a = cards_by[(users[0], 0)]
        b = cards_by[(users[1], 1)]
        R.check(not is_successor(a, b), "cross-user cards are not a chain")

    R.group("identities: exports")
    for i, v in enumerate(ids):
        if "export" not in v:
            continue
        tag = "identities[%d] export of %s" % (i, v["user_id"])
        text = v["export"]
        res = R.ok(lambda: parse_export(text), tag + ": parses")
        if res is None:
            continue
        user, gens = res
        R.eq(user, v["user_id"].encode(), tag + ": veil-user")
        mine = [x for x in ids if x["user_id"] == v["user_id"]]
        R.eq(len(gens), len(mine), tag + ": number of generations")
        for g in gens:
            x = next(x for x in mine if x["generation"] == g["card"]["generation"])
            R.eq(g["seed"].hex(), x["ed25519_seed"], tag + ": gen %d seed" % x["generation"])
            R.eq(g["card"]["raw"].hex(), x["card"], tag + ": gen %d card" % x["generation"])
            R.eq(g["age_text"], x["age_secret_key"], tag + ": gen %d age key" % x["generation"])
        lines = text.split("\n")
        gl = [j for j, ln in enumerate(lines) if ln.startswith("# veil-generation: ")]
        R.check(all(not ln.startswith("AGE-SECRET-KEY") or lines[j - 1].startswith("# veil-generation: ")
                    for j, ln in enumerate(lines)), tag + ": each age key follows its generation line")
        R.check(text.endswith("\n") and "\r" not in text, tag + ": LF line ends")
        # negatives
        R.rejects(lambda: parse_export(text.replace("# veil-identity: v1", "# veil-identity: v2")),
                  tag + ": unknown export version")
        if len(gl) >= 2:
            swapped = list(lines)
            swapped[gl[0]:gl[0] + 2], swapped[gl[1]:gl[1] + 2] = lines[gl[1]:gl[1] + 2], lines[gl[0]:gl[0] + 2]
            R.rejects(lambda: parse_export("\n".join(swapped)), tag + ": generations out of order")
            keys = list(lines)
            keys[gl[0] + 1], keys[gl[1] + 1] = lines[gl[1] + 1], lines[gl[0] + 1]
            if mlkem is not None or all(g["card"]["kind"] == 2 for g in gens):
                R.rejects(lambda: parse_export("\n".join(keys)), tag + ": age keys swapped between generations")
            f = lines[gl[1]].split(" ")
            f0 = lines[gl[0]].split(" ")
            seeds = list(lines)
            seeds[gl[1]] = " ".join(f[:3] + [f0[3]] + f[4:])
            R.rejects(lambda: parse_export("\n".join(seeds)), tag + ": seed of another generation")
            R.rejects(lambda: parse_export("\n".join(lines[:gl[1]] + lines[gl[1] + 2:]).replace(
                "# veil-generation: 0 ", "# veil-generation: 1 ")), tag + ": history not starting at 0")
        bad = list(lines)
        f = bad[gl[0]].split(" ")
        card = bytearray(b64url_decode(f[4]))
        card[16] ^= 1
        bad[gl[0]] = " ".join(f[:4] + [b64url_encode(bytes(card))])
        R.rejects(lambda: parse_export("\n".join(bad)), tag + ": tampered card")
        R.rejects(lambda: parse_export(text.replace("# veil-user: ", "# veil-user: x")), tag + ": wrong veil-user")
        R.rejects(lambda: parse_export("\n".join(l for l in lines if not l.startswith("AGE-SECRET-KEY"))),
                  tag + ": missing age keys")

    # ---------------------------------------------------------------- safety numbers
    R.group("safety numbers")
    for i, v in enumerate(load("safety_numbers.json")):
        tag = "safety_numbers[%d]" % i
        ca = parse_card(bytes.fromhex(v["card_a"]))
        cb = parse_card(bytes.fromhex(v["card_b"]))
        d1, p1 = safety_number(ca, cb)
        d2, p2 = safety_number(cb, ca)
        R.eq(d1, v["digits"], tag + ": digits")
        R.eq(p1.hex(), v["payload"], tag + ": scannable payload")
        R.eq((d2, p2), (d1, p1), tag + ": argument order does not matter")
        R.eq(len(d1), 60, tag + ": 60 digits")
        R.eq(len(p1), 61, tag + ": 61-byte payload")
        da, db = safety_digest(ca), safety_digest(cb)
        first, second = sorted([(safety_digits(da), da), (safety_digits(db), db)])
        R.check(d1[:30] == first[0] and d1[30:] == second[0] and p1[1:31] == first[1],
                tag + ": halves are per-party digests in ascending digit order")
        other = cards_by.get((ca["user_id"], ca["generation"] - 1))
        if other:
            R.check(safety_number(other, cb)[0] != d1, tag + ": another generation changes the number")

    # ---------------------------------------------------------------- envelopes
    R.group("envelopes")
    seeds = {(x["user_id"].encode(), x["generation"]): bytes.fromhex(x["ed25519_seed"]) for x in ids}
    for i, v in enumerate(load("envelopes.json")):
        tag = "envelopes[%d] (%s)" % (i, v["comment"])
        K = bytes.fromhex(v["epoch_key"])
        mk, com = epoch_keys(K)
        R.eq(mk.hex(), v["message_key"], tag + ": message key")
        R.eq(com.hex(), v["commitment"], tag + ": commitment")
        card = parse_card(bytes.fromhex(v["sender_card"]))
        R.eq(card["user_id"], v["sender_id"].encode(), tag + ": sender card names the sender")
        env = bytes.fromhex(v["envelope"])
        sid = bytes.fromhex(v["session_id"])
        R.eq(env[0], 1, tag + ": version byte")
        R.eq(env[1:17], sid, tag + ": header session ID")
        R.eq(u32(env[17:21]), v["epoch"], tag + ": header epoch")
        R.eq(u32(env[21:25]), card["generation"], tag + ": header sender generation")
        R.eq(env[25:57], com, tag + ": header commitment")
        R.eq(env[57:81].hex(), v["nonce"], tag + ": header nonce")
        fields = (v["channel_cid"].encode(), v["message_id"].encode(), v["sender_id"].encode(),
                  v["parent_id"].encode(), v["quoted_id"].encode(), v["revision"])
        R.eq(env[:81] + context_bytes(*fields), bytes.fromhex(v["associated_data"]),
             tag + ": associated data = header || context")
        session = dict(id=sid, cid=fields[0], keys={v["epoch"]: K})
        cards = {(card["user_id"], card["generation"]): card}
        pt_want = bytes.fromhex(v["plaintext_hex"])
        res = R.ok(lambda: open_envelope(env, fields, session, cards), tag + ": opens")
        if res:
            R.eq(res[0], pt_want, tag + ": plaintext")
            R.eq(res[1], v["padded_length"], tag + ": padded length")
            R.eq(res[1], pad_len(len(pt_want) + 1), tag + ": padded length = P(len + 1)")
        R.eq(len(env), 161 + v["padded_length"], tag + ": size = 161 + p")
        seed = seeds.get((card["user_id"], card["generation"]))
        if seed is not None:
            R.eq(seal_envelope(sid, v["epoch"], K, seed, card["generation"], context_bytes(*fields),
                               pt_want, bytes.fromhex(v["nonce"])), env,
                 tag + ": re-sealing with the vector's nonce reproduces the envelope")
        R.eq(envelope_text(env), v["text"], tag + ": text form")
        R.eq(R.ok(lambda: parse_envelope_text(v["text"]), tag + ": text form parses"), env, tag + ": text decodes")
        # negatives
        R.rejects(lambda: parse_envelope_text(_noncanonical(v["text"])), tag + ": non-canonical text form")
        R.rejects(lambda: parse_envelope_text("veil2:" + v["text"][6:]), tag + ": text prefix veil2:")
        R.rejects(lambda: parse_envelope_text(v["text"] + "="), tag + ": padded text form")
        for off, what in [(0, "version"), (1, "session ID"), (17, "epoch"), (21, "sender generation"),
                          (25, "commitment"), (57, "nonce"), (81, "ciphertext"), (len(env) - 1, "tag")]:
            R.rejects(lambda: open_envelope(flip(env, off), fields, session, cards), tag + ": flipped " + what)
        R.rejects(lambda: open_envelope(env[:-1], fields, session, cards), tag + ": truncated")
        R.rejects(lambda: open_envelope(env + b"\x00", fields, session, cards), tag + ": extended")
        for j, name in enumerate(["channel CID", "message ID", "sender ID", "parent ID", "quoted ID"]):
            f2 = list(fields)
            f2[j] = f2[j] + b"x"
            s2 = dict(session, cid=f2[0]) if j == 0 else session
            c2 = {(f2[2], card["generation"]): card} if j == 2 else cards
            R.rejects(lambda: open_envelope(env, tuple(f2), s2, c2), tag + ": context " + name + " changed")
        if fields[4]:
            R.rejects(lambda: open_envelope(env, fields[:4] + (b"", fields[5]), session, cards),
                      tag + ": context quoted ID removed")
        for rev in {fields[5] + 1, fields[5] ^ 0x80000000, fields[5] - 1 if fields[5] else 1 << 24}:
            R.rejects(lambda: open_envelope(env, fields[:5] + (rev,), session, cards),
                      tag + ": context revision changed to %d" % rev)
        R.rejects(lambda: open_envelope(env, fields, dict(session, cid=b"other"), cards), tag + ": session of another channel")
        R.rejects(lambda: open_envelope(env, fields, dict(session, keys={v["epoch"]: flip(K, 0)}), cards),
                  tag + ": wrong epoch key (commitment)")
        wrong = [c for k, c in cards_by.items() if k[0] == card["user_id"] and c["signing_key"] != card["signing_key"]]
        if wrong:
            R.rejects(lambda: open_envelope(env, fields, session, {(card["user_id"], card["generation"]): wrong[0]}),
                      tag + ": signature under another card")
        if seed is not None:
            # re-seal with a bad padding and with a signature of the wrong label: a reader must reject both
            nonce = bytes.fromhex(v["nonce"])
            ctx = context_bytes(*fields)
            header = env[:81]
            for name, padded, label in [
                    ("padding without 0x80", b"\x00" * pad_len(len(pt_want) + 1), LABEL_ENVELOPE),
                    ("over-long padding", pt_want + b"\x80" + b"\x00" * (pad_len(len(pt_want) + 1) + 31 - len(pt_want)),
                     LABEL_ENVELOPE),
                    ("signature under veil/v1/grant", pad(pt_want), LABEL_GRANT)]:
                sig = ed25519_sign(seed, signed(label, header + ctx + padded))
                bad = header + xchacha20poly1305_seal(mk, nonce, padded + sig, header + ctx)
                R.rejects(lambda: open_envelope(bad, fields, session, cards), tag + ": " + name)

    # ---------------------------------------------------------------- grants
    R.group("envelopes: revisions (self-made)")
    # Re-seal the first vector whose sender's seed is known as revisions of
    # one message, with nonces of its own, and replay them at a reader.
    v = next(x for x in load("envelopes.json")
             if (x["sender_id"].encode(), parse_card(bytes.fromhex(x["sender_card"]))["generation"]) in seeds)
    card = parse_card(bytes.fromhex(v["sender_card"]))
    seed, K, sid = seeds[(card["user_id"], card["generation"])], bytes.fromhex(v["epoch_key"]), bytes.fromhex(v["session_id"])
    session = dict(id=sid, cid=v["channel_cid"].encode(), keys={v["epoch"]: K})
    cards = {(card["user_id"], card["generation"]): card}

    def revision(rev, variant=0, mid=b"msg-rev"):
        fields = (v["channel_cid"].encode(), mid, v["sender_id"].encode(), b"", b"", rev)
        nonce = hashlib.sha256(b"revision %d %d" % (rev, variant)).digest()[:24]
        text = b"revision %d" % rev
        return seal_envelope(sid, v["epoch"], K, seed, card["generation"], context_bytes(*fields), text, nonce), fields

    def outcome(fn):
        try:
            fn()
            return "opens"
        except Reject:
            return "rejected"
        except Stale:
            return "stale"
        except Equivocation:
            return "equivocation"

    reader = RevisionReader()
    r0, r1, r1b, r2, r3 = revision(0), revision(1), revision(1, 1), revision(2), revision(3)
    forged0 = (flip(r0[0], len(r0[0]) - 1), r0[1])
    forged3 = (flip(r3[0], len(r3[0]) - 1), r3[1])
    for name, (env, fields), want in [
            ("revision 1 of a new message", r1, "opens"),
            ("revision 0 after 1", r0, "stale"),
            ("revision 1 again, same envelope", r1, "opens"),
            ("another envelope of revision 1", r1b, "equivocation"),
            ("revision 0 that does not authenticate: the opaque error, not stale", forged0, "rejected"),
            ("revision 3 that does not authenticate", forged3, "rejected"),
            ("revision 2 after a forged revision 3: nothing kept changed", r2, "opens"),
            ("revision 1 after 2", r1, "stale"),
            ("revision 0 of another message ID", revision(0, 0, b"msg-other"), "opens"),
            ("revision 3", r3, "opens"),
            ("revision 2 after 3", r2, "stale")]:
        R.eq(outcome(lambda: reader.open(env, fields, session, cards)), want, "revision rule: " + name)

    R.group("grants")
    stanza_kinds = []
    for i, v in enumerate(load("grants.json")):
        tag = "grants[%d] %s -> %s" % (i, v["granter"], v["grantee"])
        gcard = parse_card(bytes.fromhex(v["granter_card"]))
        R.eq((gcard["user_id"], gcard["generation"]), (v["granter"].encode(), v["granter_generation"]),
             tag + ": granter card matches")
        data = bytes.fromhex(v["grant"])
        R.check(len(data) <= MAX_GRANT, tag + ": at most 4,096 bytes")
        stanzas = R.ok(lambda: parse_age_file(data)[0], tag + ": age v1 header parses") or []
        R.eq(len(stanzas), 1, tag + ": exactly one stanza")
        stype = stanzas[0][0][0] if stanzas else "?"
        stanza_kinds.append(stype)
        _, gens = parse_export(v["grantee_export"])
        want_card = gens[v["grantee_generation"]]["card"]
        R.eq(stype, "mlkem768x25519" if want_card["kind"] == 1 else "X25519",
             tag + ": stanza type fits the grantee card's kind")
        if stype == "mlkem768x25519" and mlkem is None:
            print("skip: %s: mlkem768x25519 stanza (no ML-KEM in this cryptography build)" % tag)
            continue
        granters = {(gcard["user_id"], gcard["generation"]): gcard}
        want = dict(session_id=bytes.fromhex(v["session_id"]), epoch=v["epoch"],
                    channel_cid=v["channel_cid"].encode())
        g = R.ok(lambda: open_grant(data, v["grantee_export"], granters, want), tag + ": opens and verifies")
        if g:
            R.eq(g["epoch_key"].hex(), v["epoch_key"], tag + ": epoch key")
            R.eq(g["grantee"], v["grantee"].encode(), tag + ": grantee")
            R.eq(g["grantee_generation"], v["grantee_generation"], tag + ": grantee generation")
            R.eq(g["granter"], v["granter"].encode(), tag + ": granter")
            R.eq(g["granter_generation"], v["granter_generation"], tag + ": granter generation")
            R.eq(g["_identity_generation"], v["grantee_generation"], tag + ": opened by that generation's key")
            fields = dict(session_id=want["session_id"], epoch=v["epoch"], epoch_key=bytes.fromhex(v["epoch_key"]),
                          channel_cid=want["channel_cid"], grantee=v["grantee"].encode(),
                          grantee_generation=v["grantee_generation"], granter=v["granter"].encode(),
                          granter_generation=v["granter_generation"])
            R.eq(encode_grant_unsigned(fields), g["unsigned"], tag + ": payload re-encodes")
            s = seeds.get((gcard["user_id"], gcard["generation"]))
            if s is not None:
                R.eq(ed25519_sign(s, signed(LABEL_GRANT, g["unsigned"])), g["signature"],
                     tag + ": signature reproduced (deterministic Ed25519)")
            R.check(not ed25519_verify(gcard["signing_key"], g["signature"], signed(LABEL_ENVELOPE, g["unsigned"])),
                    tag + ": signature is not valid under another label")
            payload = g["unsigned"] + g["signature"]
            R.rejects(lambda: parse_grant_payload(payload + b"\x00"), tag + ": payload with trailing byte")
            R.rejects(lambda: parse_grant_payload(payload[:-1]), tag + ": truncated payload")
            R.rejects(lambda: parse_grant_payload(b"\x02" + payload[1:]), tag + ": payload version 2")
        # negatives on the file
        mac_at = data.find(b"\n--- ") + 5
        other_char = b"A" if data[mac_at:mac_at + 1] != b"A" else b"B"
        R.rejects(lambda: open_grant(flip(data, len(data) - 1), v["grantee_export"], granters, want),
                  tag + ": flipped payload byte")
        R.rejects(lambda: open_grant(data[:mac_at] + other_char + data[mac_at + 1:], v["grantee_export"],
                                     granters, want), tag + ": changed header MAC")
        R.rejects(lambda: open_grant(data + b"\x00", v["grantee_export"], granters, want), tag + ": extended file")
        R.rejects(lambda: open_grant(data, v["grantee_export"], granters, dict(want, epoch=want["epoch"] + 1)),
                  tag + ": not the epoch asked for")
        R.rejects(lambda: open_grant(data, v["grantee_export"], granters, dict(want, channel_cid=b"other")),
                  tag + ": not the channel asked for")
        other_granter = [c for k, c in cards_by.items() if k[0] == gcard["user_id"] and k != (gcard["user_id"], gcard["generation"])]
        if other_granter:
            oc = other_granter[0]
            R.rejects(lambda: open_grant(data, v["grantee_export"],
                                         {(gcard["user_id"], gcard["generation"]): oc}, want),
                      tag + ": signature under another card of the granter")
        others = [x["export"] for x in ids if "export" in x and x["user_id"] != v["grantee"]]
        for o in others:
            R.rejects(lambda: open_grant(data, o, granters, want), tag + ": other user's identity cannot open it")
        # an identity file with only the older generation cannot open a grant to the newer one
        lines = v["grantee_export"].split("\n")
        gl = [j for j, ln in enumerate(lines) if ln.startswith("# veil-generation: ")]
        if len(gl) >= 2:
            R.rejects(lambda: open_grant(data, "\n".join(lines[:gl[1]]) + "\n", granters, want),
                      tag + ": the previous generation's key cannot open it")

    R.group("grants: reader rules (self-made)")
    for i, v in enumerate(load("grants.json")):
        gcard = parse_card(bytes.fromhex(v["granter_card"]))
        _, gens = parse_export(v["grantee_export"])
        target = gens[v["grantee_generation"]]["card"]
        s_granter = seeds.get((gcard["user_id"], gcard["generation"]))
        if target["kind"] != 2 or s_granter is None:
            continue  # this writer only does X25519 stanzas
        tag = "grants[%d] rebuilt" % i
        granters = {(gcard["user_id"], gcard["generation"]): gcard}
        want = dict(session_id=bytes.fromhex(v["session_id"]), epoch=v["epoch"], channel_cid=v["channel_cid"].encode())
        base = dict(want, epoch_key=bytes.fromhex(v["epoch_key"]), grantee=v["grantee"].encode(),
                    grantee_generation=v["grantee_generation"], granter=v["granter"].encode(),
                    granter_generation=v["granter_generation"])

        def make(fields=None, recipients=None, extra=b"", label=LABEL_GRANT, signer=s_granter):
            f = dict(base, **(fields or {}))
            u = encode_grant_unsigned(f)
            return age_encrypt_x25519(recipients or [target["recipient"]],
                                      u + ed25519_sign(signer, signed(label, u)) + extra)

        R.ok(lambda: open_grant(make(), v["grantee_export"], granters, want), tag + ": control grant opens")
        R.rejects(lambda: open_grant(make({"grantee": b"mallory"}), v["grantee_export"], granters, want),
                  tag + ": grantee other than itself")
        newest = gens[-1]["card"]["generation"]
        R.rejects(lambda: open_grant(make({"grantee_generation": newest + 1}),
                                     v["grantee_export"], granters, want),
                  tag + ": grantee generation newer than the reader's newest")
        R.rejects(lambda: open_grant(make(label=LABEL_ENVELOPE), v["grantee_export"], granters, want),
                  tag + ": signed under veil/v1/envelope")
        R.rejects(lambda: open_grant(make(signer=os.urandom(32)), v["grantee_export"], granters, want),
                  tag + ": signed by another key")
        R.rejects(lambda: open_grant(make(extra=b"\x00"), v["grantee_export"], granters, want),
                  tag + ": payload with a trailing byte")
        R.rejects(lambda: open_grant(make({"session_id": os.urandom(16)}), v["grantee_export"], granters, want),
                  tag + ": another session")
        R.rejects(lambda: open_grant(make(recipients=[target["recipient"], x25519_base(os.urandom(32))]),
                                     v["grantee_export"], granters, want), tag + ": two stanzas")
        big = make(recipients=[target["recipient"]] + [x25519_base(os.urandom(32))] * 200)
        R.check(len(big) > MAX_GRANT, tag + ": oversized control file is over 16 KiB")
        R.rejects(lambda: open_grant(big, v["grantee_export"], granters, want), tag + ": larger than 16 KiB")

    # ---------------------------------------------------------------- attachments
    R.group("attachments")
    for i, v in enumerate(load("attachments.json")):
        tag = "attachments[%d] (%d bytes)" % (i, v["plaintext_length"])
        K = bytes.fromhex(v["file_key"])
        N = bytes.fromhex(v["nonce"])
        pt = vector_plaintext(v["plaintext_seed"].encode(), v["plaintext_length"])
        ct = attachment_seal(K, N, pt)
        n = len(pt)
        R.eq(len(ct), 56 + n + 16 * max(1, -(-n // CHUNK)), tag + ": size formula of section 8")
        R.eq(hashlib.sha256(ct).hexdigest(), v["ciphertext_sha256"], tag + ": ciphertext SHA-256 (re-encrypted)")
        if "ciphertext" in v:
            R.eq(ct.hex(), v["ciphertext"], tag + ": ciphertext byte for byte")
            R.eq(hashlib.sha256(bytes.fromhex(v["ciphertext"])).hexdigest(), v["ciphertext_sha256"],
                 tag + ": given ciphertext matches its SHA-256")
            ct_given = bytes.fromhex(v["ciphertext"])
        else:
            ct_given = ct
        R.eq(ct_given[:8], b"VEILATT1", tag + ": magic")
        R.eq(ct_given[8:24], N, tag + ": header nonce")
        R.eq(ct_given[24:56], attachment_keys(K, N)[1], tag + ": header commitment")
        trace = []
        got = R.ok(lambda: attachment_open(K, ct_given, trace), tag + ": opens")
        R.eq(got, pt, tag + ": plaintext")
        want_chunks = max(1, -(-n // CHUNK))
        R.eq(len(trace), want_chunks, tag + ": number of chunks")
        R.check(all(last == (j == want_chunks - 1) for j, _, last in trace), tag + ": only the last chunk has flag 0x01")
        R.check(all(size == CHUNK for j, size, _ in trace[:-1]), tag + ": all but the last chunk are 64 KiB")
        R.check(trace and (trace[-1][1] > 0 or n == 0), tag + ": last chunk empty only for an empty file")
        # negatives
        R.rejects(lambda: attachment_open(flip(K, 0), ct_given), tag + ": wrong key (commitment)")
        R.rejects(lambda: attachment_open(K, b"VEILATT2" + ct_given[8:]), tag + ": wrong magic")
        R.rejects(lambda: attachment_open(K, flip(ct_given, 8)), tag + ": nonce changed")
        R.rejects(lambda: attachment_open(K, flip(ct_given, len(ct_given) - 1)), tag + ": tag changed")
        R.rejects(lambda: attachment_open(K, ct_given + b"\x00"), tag + ": extended")
        R.rejects(lambda: attachment_open(K, ct_given[:-1]), tag + ": truncated by one byte")
        P = attachment_keys(K, N)[0]
        if n and n % CHUNK == 0:
            # the same plaintext chunks sealed with an extra empty last chunk are not the canonical form
            aead = ChaCha20Poly1305(P)
            k = n // CHUNK
            alt = ct_given[:56] + b"".join(aead.encrypt(stream_nonce(j, False), pt[j * CHUNK:(j + 1) * CHUNK], b"")
                                           for j in range(k)) + aead.encrypt(stream_nonce(k, True), b"", b"")
            R.rejects(lambda: attachment_open(K, alt), tag + ": trailing empty last chunk")
        if n > CHUNK:
            body = ct_given[56:]
            first, rest = body[:CHUNK + TAG], body[CHUNK + TAG:]
            R.rejects(lambda: attachment_open(K, ct_given[:56] + first), tag + ": dropped last chunk (truncation)")
            R.rejects(lambda: attachment_open(K, ct_given[:56] + rest + first), tag + ": reordered chunks")
        # spliced from a file with another nonce under the same key
        other = attachment_seal(K, flip(N, 15), pt)
        R.rejects(lambda: attachment_open(K, ct_given[:56] + other[56:]), tag + ": chunks spliced from another file")

    # ---------------------------------------------------------- membership log
    R.group("membership log: cards")
    lv = load("memberlog.json")
    directory = R.ok(lambda: log_directory(lv["cards"]), "memberlog.json: every card parses")
    for user, cards in (directory or {}).items():
        R.eq([c["generation"] for c in cards], list(range(len(cards))), "%s: cards by generation from 0" % user)
        R.check(all(c["user_id"] == user for c in cards) and valid_history(cards), "%s: the cards form a chain" % user)

    R.group("membership log: chains")
    log_sections = set()
    for ci, chain in enumerate(lv["chains"]):
        sid, cid = bytes.fromhex(chain["session_id"]), chain["channel_cid"].encode("utf-8")
        keys = [bytes.fromhex(k) for k in chain["epoch_keys"]]
        state = None
        for i, rv in enumerate(chain["records"]):
            tag = "chains[%d] record %d (%s)" % (ci, i, rv["comment"])
            raw = bytes.fromhex(rv["record"])
            R.eq(log_hash(raw).hex(), rv["hash"], tag + ": hash")
            prev = state
            if i == 0:
                R.eq(log_hash(raw)[:16], sid, tag + ": the session ID is H(genesis)[0:16]")
                state = R.ok(lambda: log_genesis(raw, sid, cid, directory), tag + ": accepted")
            else:
                state = R.ok(lambda: log_apply(prev, raw, directory), tag + ": accepted")
            if state is None:
                break
            got = log_state_vector(state)
            diff = sorted(k for k in set(got) | set(rv["state"]) if got.get(k) != rv["state"].get(k))
            R.check(not diff, tag + ": state after the record" + "".join(
                "; %s: got %r, want %r" % (k, _short(repr(got.get(k))), _short(repr(rv["state"].get(k)))) for k in diff))
            R.eq(state["policy"], chain["policy"], tag + ": policy")
            rec = parse_log_record(raw)
            if i > 0:
                R.eq(rec["roster_digest"].hex(), rv["state"]["roster_digest"], tag + ": the record's roster digest")
            R.check(all(ct_eq(epoch_keys(keys[e])[1], state["commitments"][e]) for e in range(state["epoch"] + 1)),
                    tag + ": every epoch key matches its commitment (10.4 rule 3)")
            # every byte of the record, flipped, must be rejected
            accepted = []
            for j in range(len(raw)):
                for mask in (0x01, 0x80):
                    bad = flip(raw, j, mask)
                    try:
                        if i == 0:
                            log_genesis(bad, sid, cid, directory)
                        else:
                            log_apply(prev, bad, directory)
                        accepted.append((j, mask))
                    except Reject:
                        pass
            R.check(not accepted, tag + ": %d copies with one bit flipped (bits 0 and 7 of every byte) are all "
                    "rejected; accepted: %r" % (2 * len(raw), accepted[:5]))
            R.rejects(lambda: log_apply(prev, raw + b"\x00", directory) if i else
                      log_genesis(raw + b"\x00", sid, cid, directory), tag + ": a trailing byte")
            R.rejects(lambda: log_apply(prev, raw[:-1], directory) if i else
                      log_genesis(raw[:-1], sid, cid, directory), tag + ": truncated by one byte")
            if i > 0:
                R.rejects(lambda: log_apply(state, raw, directory), tag + ": applied twice")
        if state is not None:
            R.eq(len(keys), state["epoch"] + 1, "chains[%d]: one epoch key per epoch" % ci)

    R.group("membership log: invalid logs")
    for i, v in enumerate(lv["invalid"]):
        tag = "invalid[%d]: %s" % (i, v["comment"])
        want = v["comment"].split(":")[0].split(" ")[0].lstrip("§")
        log_sections.add(want)
        R.rejects(lambda: log_replay_invalid(lv, v), tag, section=want)
    for s in ("10.1", "10.2", "10.3", "10.4"):
        R.check(s in log_sections, "memberlog.json has invalid logs for section %s" % s)

    R.group("membership log: pinned readers")
    kinds = set()
    for i, v in enumerate(lv["pinned"]):
        tag = "pinned[%d]: %s" % (i, v["comment"])
        kinds.add(v["valid"])
        if v["valid"]:
            R.ok(lambda: log_replay_pinned(lv, v), tag + ": accepted")
        else:
            R.rejects(lambda: log_replay_pinned(lv, v), tag, section="10.4")
    R.check(kinds == {True, False}, "memberlog.json has pinned logs to accept and to reject")

    # ---------------------------------------------------------- rejections
    R.group("rejections.json")
    constructions = set()
    for i, v in enumerate(load("rejections.json")):
        constructions.add(v["construction"])
        tag = "rejections[%d] %s: %s" % (i, v["construction"], v["comment"])
        R.rejects(lambda: open_rejection(v), tag)
    for c in ["card", "chain", "export", "passphrase_export", "envelope", "text", "grant", "attachment"]:
        R.check(c in constructions, "rejections.json has %s vectors" % c)

    R.group("accepts.json")
    constructions = set()
    for i, v in enumerate(load("accepts.json")):
        constructions.add(v["construction"])
        tag = "accepts[%d] %s: %s" % (i, v["construction"], v["comment"])
        R.eq(R.ok(lambda: open_accept(v), tag + ": accepted"), v["fingerprints"], tag + ": the cards it yields")
    for c in ["card", "chain", "export"]:
        R.check(c in constructions, "accepts.json has %s vectors" % c)

    R.group("stanzas.json")
    kinds = set()
    for i, v in enumerate(load("stanzas.json")):
        kinds.add(v["type"])
        tag = "stanzas[%d] %s" % (i, v["type"])
        if v["type"] == "mlkem768x25519" and mlkem is None:
            continue
        got = R.ok(lambda: open_stanza_steps(v), tag + ": opened step by step")
        for k in sorted(got or {}):
            R.eq(got[k], v[k], tag + ": " + k)
        file_key = bytes.fromhex(v["file_key"])
        stanzas, header, mac, payload = parse_age_file(bytes.fromhex(v["age_file"]))
        R.check(len(stanzas) == 1, tag + ": the file has one stanza")
        R.check(ct_eq(hmac.new(hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest(), mac),
                tag + ": the file key authenticates the header")
        R.eq(stream_open(hkdf(file_key, payload[:16], b"payload"), payload[16:]).hex(), v["payload"], tag + ": payload")
        kind, secret = parse_age_secret_key(v["secret_key"])
        R.eq(age_decrypt(bytes.fromhex(v["age_file"]), [(kind, secret)])[0].hex(), v["payload"],
             tag + ": the file opens through age_decrypt")
    R.check(kinds == {"mlkem768x25519", "X25519"}, "stanzas.json has a hybrid and an X25519 stanza")

    R.group("coverage")
    if mlkem is not None:
        R.check("mlkem768x25519" in stanza_kinds, "a hybrid (mlkem768x25519) grant was checked")
    R.check("X25519" in stanza_kinds, "an X25519 grant was checked")

    R.report()
    if R.failures:
        print("verify_vectors: %d check(s) FAILED" % R.failures)
        return 1
    print("verify_vectors: all %d checks passed" % sum(g[1] for g in R.groups))
    return 0


def open_rejection(v):
    """Run a rejections.json vector through the reader of its construction."""
    c = v["construction"]
    if c == "card":
        return parse_card(bytes.fromhex(v["input"]))
    if c == "chain":
        cards = [parse_card(bytes.fromhex(h)) for h in v["cards"]]
        if not valid_history(cards):
            raise Reject("chain: a card is not the successor of the one before it")
        return cards
    if c == "export":
        return parse_export(padded_export(v["input_text"], v.get("padding", 0)))
    if c == "passphrase_export":
        return check_passphrase_export_header(v["input_text"])
    if c in ("envelope", "text"):
        e = v["envelope_context"]
        card = parse_card(bytes.fromhex(e["sender_card"]))
        fields = (e["channel_cid"].encode(), e["message_id"].encode(), e["sender_id"].encode(),
                  e["parent_id"].encode(), e["quoted_id"].encode(), e["revision"])
        session = dict(id=bytes.fromhex(e["session_id"]), cid=e.get("session_channel_cid", e["channel_cid"]).encode(),
                       keys={e["epoch"]: bytes.fromhex(e["epoch_key"])})
        env = parse_envelope_text(v["input_text"]) if c == "text" else bytes.fromhex(v["input"])
        return open_envelope(env, fields, session, {(card["user_id"], card["generation"]): card},
                             min_generation=e.get("min_sender_generation", 0))
    if c == "grant":
        g = v["grant_context"]
        cards = [parse_card(bytes.fromhex(h)) for h in g["granter_cards"]]
        want = dict(session_id=bytes.fromhex(g["session_id"]), epoch=g["epoch"],
                    channel_cid=g["channel_cid"].encode(), min_granter_generation=g.get("min_granter_generation", 0))
        return open_grant(bytes.fromhex(v["input"]), g["grantee_export"],
                          {(x["user_id"], x["generation"]): x for x in cards}, want)
    if c == "attachment":
        return attachment_open(bytes.fromhex(v["file_key"]), bytes.fromhex(v["input"]))
    raise ValueError("unknown construction %r" % c)


def open_accept(v):
    """Run an accepts.json vector through the reader of its construction;
    returns the fingerprints of the cards it yields."""
    c = v["construction"]
    if c == "card":
        return [fingerprint(parse_card(bytes.fromhex(v["input"])))]
    if c == "chain":
        cards = [parse_card(bytes.fromhex(h)) for h in v["cards"]]
        if not valid_history(cards):
            raise Reject("chain: a card is not the successor of the one before it")
        return [fingerprint(x) for x in cards]
    if c == "export":
        _, gens = parse_export(padded_export(v["input_text"], v.get("padding", 0)))
        return [fingerprint(g["card"]) for g in gens]
    raise ValueError("unknown construction %r" % c)


def _stanza_lines(text):
    """A stanza's text: (type, arguments, body)."""
    lines = text.split("\n")
    if not lines[0].startswith("-> ") or lines[-1] != "":
        raise Reject("stanza: malformed")
    args = lines[0][3:].split(" ")
    body = "".join(lines[1:-1])
    return args[0], args[1:], b64std_decode(body)


def open_stanza_steps(v):
    """Section 2: open a stanza from the secret key, every intermediate value
    computed here. Returns the values to compare with the vector."""
    kind, secret = parse_age_secret_key(v["secret_key"])
    typ, args, body = _stanza_lines(v["stanza"])
    out = dict(type=typ, body=body.hex())
    if kind == 1:
        if typ != "mlkem768x25519" or len(args) != 1:
            raise Reject("stanza: not mlkem768x25519")
        enc = b64std_decode(args[0])
        expanded = hashlib.shake_256(secret).digest(96)
        ek_pq, ek_t, dk_pq, dk_t = xwing_expand(secret)
        ss_m, ss_x = dk_pq.decapsulate(enc[:1088]), x25519_dh(dk_t, enc[1088:])
        shared = hashlib.sha3_256(ss_m + ss_x + enc[1088:] + ek_t + XWING_LABEL).digest()
        context = (b"\x00" + hpke_labeled_extract(b"", b"psk_id_hash", b"")
                   + hpke_labeled_extract(b"", b"info_hash", AGE_PQ_INFO))
        sec = hpke_labeled_extract(shared, b"secret", b"")
        key = hpke_labeled_expand(sec, b"key", context, 32)
        nonce = hpke_labeled_expand(sec, b"base_nonce", context, 12)
        out.update(expanded=expanded.hex(), mlkem_public_key=ek_pq.hex(), x25519_public_key=ek_t.hex(),
                   enc=enc.hex(), shared_mlkem=ss_m.hex(), shared_x25519=ss_x.hex(), shared_secret=shared.hex(),
                   suite_id=HPKE_SUITE.hex(), key_schedule_context=context.hex(), secret=sec.hex(), key=key.hex(),
                   base_nonce=nonce.hex(), recipient=bech32_encode("age1pq", ek_pq + ek_t),
                   file_key=ChaCha20Poly1305(key).decrypt(nonce, body, b"").hex())
    else:
        if typ != "X25519" or len(args) != 1:
            raise Reject("stanza: not X25519")
        share = b64std_decode(args[0])
        shared = x25519_dh(secret, share)
        wrap = hkdf(shared, share + x25519_base(secret), b"age-encryption.org/v1/X25519")
        out.update(share=share.hex(), shared=shared.hex(), wrap_key=wrap.hex(),
                   recipient=bech32_encode("age", x25519_base(secret)),
                   file_key=ChaCha20Poly1305(wrap).decrypt(b"\x00" * 12, body, b"").hex())
    return out


MAX_WORK_FACTOR = 18


def check_passphrase_export_header(text):
    """The checks a reader makes before running scrypt (section 4.5): one
    scrypt stanza whose work factor is within the reader's bound. This
    implementation does not run scrypt, so an export that passes them is
    reported as an error, not as accepted."""
    body = text.strip()
    begin, end = "-----BEGIN AGE ENCRYPTED FILE-----", "-----END AGE ENCRYPTED FILE-----"
    if not body.startswith(begin) or not body.endswith(end):
        raise Reject("passphrase export: not armored")
    try:
        data = base64.b64decode("".join(body[len(begin):-len(end)].split()), validate=True)
    except ValueError:
        raise Reject("passphrase export: armor is not base64")
    stanzas = parse_age_file(data)[0]
    if len(stanzas) != 1 or stanzas[0][0][0] != "scrypt" or len(stanzas[0][0]) != 3:
        raise Reject("passphrase export: not one scrypt stanza")
    wf = stanzas[0][0][2]
    if not wf.isdigit() or str(int(wf)) != wf or not 1 <= int(wf) <= MAX_WORK_FACTOR:
        raise Reject("passphrase export: work factor %s out of bounds" % wf)
    raise NotImplementedError("scrypt decryption is not implemented here")


def _noncanonical(text):
    """Change the unused low bits of the last base64url character, if there are any."""
    body = text[6:]
    if len(body) % 4 == 0:
        return text + "A"  # length = 1 mod 4 is never valid
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(body[-1])
    return text[:-1] + alphabet[last ^ 1]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        print("verify_vectors: cannot run the vectors: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
