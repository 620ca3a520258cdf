#!/usr/bin/env python3
"""An independent client of flashgate's binary protocol, written from
docs/PROTOCOL.md alone (no Rust code shared), used to check that the document
and the server agree.

    pip install aioquic
    python3 scripts/protocol_check.py HOST:PORT CERT_PEM ADMIN_TOKEN

It creates a SKU, places orders (one at a time, pipelined, and as a batch),
reads them back, checks an idempotent retry and the error codes, sends a
malformed and an oversized frame, and exits non-zero on the first mismatch.
"""
import asyncio
import struct
import sys
import time

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration

# ---- section 4: encoding --------------------------------------------------


def varint(value):
    if value <= 250:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfb" + struct.pack("<H", value)
    if value < 1 << 32:
        return b"\xfc" + struct.pack("<I", value)
    return b"\xfd" + struct.pack("<Q", value)


def string(text):
    data = text.encode()
    return varint(len(data)) + data


def option(value, encode):
    return b"\x00" if value is None else b"\x01" + encode(value)


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def byte(self):
        self.at += 1
        return self.data[self.at - 1]

    def varint(self):
        first = self.byte()
        if first <= 250:
            return first
        size, fmt = {0xFB: (2, "<H"), 0xFC: (4, "<I"), 0xFD: (8, "<Q")}[first]
        (value,) = struct.unpack(fmt, self.data[self.at : self.at + size])
        self.at += size
        return value

    def bool(self):
        value = self.byte()
        assert value in (0, 1), f"bad bool {value}"
        return value == 1

    def string(self):
        length = self.varint()
        self.at += length
        return self.data[self.at - length : self.at].decode()

    def option(self, decode):
        return decode() if self.byte() == 1 else None

    def done(self):
        assert self.at == len(self.data), f"{len(self.data) - self.at} trailing bytes"


# ---- section 3: frames ------------------------------------------------------


def frame(body):
    return struct.pack(">I", len(body) + 1) + b"\x01" + body


# ---- section 5: messages ----------------------------------------------------


def place_order_struct(request_id, sku, quantity, customer, key=None):
    return varint(request_id) + string(sku) + varint(quantity) + string(customer) + option(key, string)


def place_order(request_id, sku, quantity, customer, key=None):
    return varint(0) + place_order_struct(request_id, sku, quantity, customer, key)


def get_order(request_id, order_id):
    return varint(1) + varint(request_id) + string(order_id)


def confirm(request_id, order_id):
    return varint(2) + varint(request_id) + string(order_id)


def get_sku(request_id, sku):
    return varint(4) + varint(request_id) + string(sku)


def place_orders(orders):
    return varint(5) + varint(len(orders)) + b"".join(place_order_struct(*o) for o in orders)


def put_sku(request_id, token, sku, stock, limit=None):
    settings = option(stock, varint) + option(limit, varint) + b"\x00" * 4
    return varint(6) + varint(request_id) + string(token) + string(sku) + settings


STATUS = ["reserved", "confirmed", "cancelled", "expired"]


def read_order(r):
    return {
        "order_id": r.string(),
        "sku": r.string(),
        "quantity": r.varint(),
        "customer_id": r.string(),
        "status": STATUS[r.varint()],
        "created_at_ms": r.varint(),
        "reserved_until_ms": r.varint(),
        "updated_at_ms": r.varint(),
    }


def read_sku(r):
    return {
        "sku": r.string(),
        "total": r.varint(),
        "available": r.varint(),
        "reserved": r.varint(),
        "sold": r.varint(),
        "per_customer_limit": r.option(r.varint),
        "max_quantity_per_order": r.varint(),
        "sale_starts_at_ms": r.option(r.varint),
        "reservation_ttl_secs": r.varint(),
        "low_stock_threshold": r.varint(),
        "low_stock": r.bool(),
    }


def read_response(r):
    variant = r.varint()
    if variant == 0:
        return {"kind": "order", "request_id": r.varint(), "created": r.bool(), "order": read_order(r)}
    if variant == 1:
        return {"kind": "sku", "request_id": r.varint(), "created": r.bool(), "sku": read_sku(r)}
    if variant == 2:
        return {"kind": "error", "request_id": r.varint(), "code": r.string(), "detail": r.string()}
    if variant == 3:
        return {"kind": "batch", "results": [read_response(r) for _ in range(r.varint())]}
    if variant == 4:
        return {"kind": "frame_error", "code": r.string(), "detail": r.string()}
    raise AssertionError(f"unknown response variant {variant}")


# ---- section 2: streams -----------------------------------------------------


async def exchange(client, frames, expected):
    """Sends frames on a new stream, finishes it, reads `expected` answers."""
    reader, writer = await client.create_stream()
    writer.write(b"".join(frames))
    writer.write_eof()
    answers = []
    while len(answers) < expected:
        header = await asyncio.wait_for(reader.readexactly(5), 10)
        (length,) = struct.unpack(">I", header[:4])
        assert header[4] == 1, f"answer version {header[4]}"
        r = Reader(await asyncio.wait_for(reader.readexactly(length - 1), 10))
        answers.append(read_response(r))
        r.done()
    return answers


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}")
        sys.exit(1)
    print(f"ok: {message}")


async def main(address, cert, token):
    host, port = address.rsplit(":", 1)
    config = QuicConfiguration(is_client=True, alpn_protocols=["flashgate/1"], server_name="localhost")
    config.load_verify_locations(cert)
    sku = f"PY-{int(time.time() * 1000)}"
    async with connect(host, int(port), configuration=config) as client:
        [created] = await exchange(client, [frame(put_sku(1, token, sku, 3, limit=2))], 1)
        check(created["kind"] == "sku" and created["created"] and created["sku"]["total"] == 3, "PutSku creates")

        # Pipelined: three requests on one stream, matched by request id.
        answers = await exchange(
            client,
            [frame(place_order(10, sku, 1, "ada", "key-1")), frame(place_order(11, sku, 1, "bob")), frame(get_sku(12, sku))],
            3,
        )
        by_id = {a["request_id"]: a for a in answers}
        check(set(by_id) == {10, 11, 12}, "three pipelined answers, by request id")
        check(by_id[10]["created"] and by_id[10]["order"]["status"] == "reserved", "order placed")
        first_id = by_id[10]["order"]["order_id"]

        [retry] = await exchange(client, [frame(place_order(20, sku, 1, "ada", "key-1"))], 1)
        check(retry["kind"] == "order" and not retry["created"] and retry["order"]["order_id"] == first_id, "idempotent retry")

        [batch] = await exchange(client, [frame(place_orders([(30, sku, 1, "cy"), (31, sku, 1, "dee"), (32, "NO-SUCH", 1, "eve")]))], 1)
        results = batch["results"]
        check(batch["kind"] == "batch" and [r["request_id"] for r in results] == [30, 31, 32], "batch answers in order")
        check(results[0]["kind"] == "order", "batch order placed")
        check(results[1]["kind"] == "error" and results[1]["code"] == "sold_out", "batch: sold_out")
        check(results[2]["kind"] == "error" and results[2]["code"] == "unknown_sku", "batch: unknown_sku")

        [confirmed] = await exchange(client, [frame(confirm(40, first_id))], 1)
        check(confirmed["order"]["status"] == "confirmed", "confirm")
        [fetched] = await exchange(client, [frame(get_order(41, first_id))], 1)
        check(fetched["order"]["status"] == "confirmed", "get order")
        [counters] = await exchange(client, [frame(get_sku(42, sku))], 1)
        s = counters["sku"]
        check((s["available"], s["reserved"], s["sold"]) == (0, 2, 1), "sku counters")

        [forbidden] = await exchange(client, [frame(put_sku(50, "wrong-token-0123456", sku, 3))], 1)
        check(forbidden["kind"] == "error" and forbidden["code"] == "forbidden", "wrong admin token")

        [bad] = await exchange(client, [frame(b"\x09")], 1)
        check(bad["kind"] == "frame_error" and bad["code"] == "malformed_frame", "malformed frame")
        [big] = await exchange(client, [struct.pack(">I", 100_000_000) + b"\x01"], 1)
        check(big["kind"] == "frame_error" and big["code"] == "frame_too_large", "oversized frame")
        [old] = await exchange(client, [struct.pack(">I", 2) + b"\x07\x00"], 1)
        check(old["kind"] == "frame_error" and old["code"] == "unsupported_version", "unknown version")
    print("all checks passed")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
