#!/usr/bin/env python3
"""Cuts the BGP sessions of scripts/capture-bgp-golden's pcaps into messages and writes the
golden ones (RULES below) as commented hex files.

Usage: bgp-golden-split.py WORKDIR OUTDIR VERSIONS
WORKDIR holds f-b.pcap, f-g.pcap, f-e.pcap (FRR's links to BIRD, GoBGP, ExaBGP); every
message of every stream also goes to WORKDIR/messages.txt, to choose new rules from.
"""
import ipaddress
import os
import struct
import sys

LINK_PEER = {"f-b": "bird", "f-g": "gobgp", "f-e": "exabgp"}
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}


def packets(path):
    """(timestamp, src, sport, dst, dport, flags, seq, payload) of the TCP segments."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    assert linktype == 1, f"{path}: link type {linktype}, expected Ethernet"
    offset = 24
    while offset + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        ethertype = struct.unpack("!H", frame[12:14])[0]
        if ethertype == 0x0800:
            ihl = (frame[14] & 0x0F) * 4
            total = struct.unpack("!H", frame[16:18])[0]
            src = ipaddress.ip_address(frame[26:30])
            dst = ipaddress.ip_address(frame[30:34])
            segment = frame[14 + ihl:14 + total]
        elif ethertype == 0x86DD:
            plen = struct.unpack("!H", frame[18:20])[0]
            assert frame[20] == 6, "IPv6 extension headers are not expected here"
            src = ipaddress.ip_address(frame[22:38])
            dst = ipaddress.ip_address(frame[38:54])
            segment = frame[54:54 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack("!HHI", segment[:8])
        data_offset = (segment[12] >> 4) * 4
        flags = segment[13]
        yield (sec + usec / 1e6, src, sport, dst, dport, flags, seq, segment[data_offset:])


def streams(path):
    """Each TCP direction's payload, reassembled by sequence number, in order of its SYN."""
    found = {}
    for ts, src, sport, dst, dport, flags, seq, payload in packets(path):
        key = (src, sport, dst, dport)
        if flags & 0x02:  # SYN: a new connection (a port may be reused: start over)
            found[key] = {"start": ts, "isn": seq, "chunks": {}}
            continue
        stream = found.get(key)
        if stream and payload:
            stream["chunks"][(seq - stream["isn"] - 1) % 2**32] = payload
    for key, stream in sorted(found.items(), key=lambda kv: kv[1]["start"]):
        data = bytearray()
        for at, chunk in sorted(stream["chunks"].items()):
            if at <= len(data):
                data[at:at + len(chunk)] = chunk
            else:
                break  # a hole: the capture missed something, keep what is contiguous
        yield key, bytes(data)


def messages(data):
    offset = 0
    while offset + 19 <= len(data):
        assert data[offset:offset + 16] == b"\xff" * 16, "lost BGP framing"
        length = struct.unpack("!H", data[offset + 16:offset + 18])[0]
        if offset + length > len(data):
            break
        yield data[offset:offset + length]
        offset += length


def attributes(message):
    """{type code: (flags, value)} of an UPDATE."""
    withdrawn = struct.unpack("!H", message[19:21])[0]
    at = 21 + withdrawn
    total = struct.unpack("!H", message[at:at + 2])[0]
    at += 2
    end = at + total
    found = {}
    while at < end:
        flags, code = message[at], message[at + 1]
        if flags & 0x10:
            length = struct.unpack("!H", message[at + 2:at + 4])[0]
            at += 4
        else:
            length = message[at + 2]
            at += 3
        found[code] = (flags, message[at:at + length])
        at += length
    return found


def withdrawn_len(message):
    return struct.unpack("!H", message[19:21])[0]


def nlri_len(message):
    at = 21 + withdrawn_len(message)
    return len(message) - at - 2 - struct.unpack("!H", message[at:at + 2])[0]


def is_update(m):
    return m[18] == 2


def mp_reach_afi(m, afi, next_hop_len=None):
    attr = attributes(m).get(14)
    if not attr:
        return False
    value = attr[1]
    return struct.unpack("!H", value[:2])[0] == afi and (
        next_hop_len is None or value[3] == next_hop_len)


def mp_unreach(m, afi):
    """An MP_UNREACH_NLRI of `afi` that withdraws something (not an End-of-RIB)."""
    attr = attributes(m).get(15)
    return attr is not None and len(attr[1]) > 3 and struct.unpack("!H", attr[1][:2])[0] == afi


def as_set(m):
    """An AS_SET segment in a 2-octet AS_PATH (ExaBGP runs without 4-octet AS)."""
    attr = attributes(m).get(2)
    return attr is not None and 1 in segment_kinds(attr[1], 2)


def segment_kinds(value, width):
    kinds, at = [], 0
    while at + 2 <= len(value):
        kinds.append(value[at])
        at += 2 + value[at + 1] * width
    return kinds


# name, sender, receiver, transport (4/6), description, predicate
RULES = [
    ("open_frr", "frr", "bird", 6, "OPEN of FRR on its IPv6 session to BIRD (extended next "
     "hop configured, graceful restart, add-path receive, FQDN...)", lambda m: m[18] == 1),
    ("open_bird", "bird", "frr", 6, "OPEN of BIRD on its IPv6 session (IPv6 and IPv4 with "
     "extended next hop)", lambda m: m[18] == 1),
    ("open_gobgp", "gobgp", "frr", 4, "OPEN of GoBGP in a 4-octet AS (4200000003), graceful "
     "restart", lambda m: m[18] == 1),
    ("open_exabgp", "exabgp", "frr", 4, "OPEN of ExaBGP without the 4-octet AS capability, "
     "with route refresh, graceful restart, add-path receive", lambda m: m[18] == 1),
    ("keepalive_frr", "frr", "bird", 4, "KEEPALIVE", lambda m: m[18] == 4),
    ("update_frr_ipv4_communities", "frr", "bird", 4, "IPv4 NLRI with COMMUNITIES and "
     "LARGE_COMMUNITY (FRR route-map)", lambda m: is_update(m) and nlri_len(m) > 0
     and 8 in attributes(m) and 32 in attributes(m) and 0x99 not in attributes(m)),
    ("update_frr_ipv4_partial_unknown", "frr", "bird", 4, "IPv4 route of ExaBGP with its "
     "unknown optional transitive attribute 0x99, passed on by FRR with the Partial bit",
     lambda m: is_update(m) and 0x99 in attributes(m)),
    ("update_frr_ipv4_withdraw", "frr", "bird", 4, "IPv4 withdrawal (GoBGP's route gone)",
     lambda m: is_update(m) and withdrawn_len(m) > 0),
    ("update_frr_ipv6_link_local", "frr", "bird", 6, "MP_REACH_NLRI IPv6 with a global and a "
     "link-local next hop", lambda m: is_update(m) and mp_reach_afi(m, 2, 32)),
    ("update_frr_ipv4_ipv6_next_hop", "frr", "bird", 6, "MP_REACH_NLRI IPv4 with an IPv6 next "
     "hop (RFC 8950 extended next hop)", lambda m: is_update(m) and mp_reach_afi(m, 1)),
    ("update_frr_ipv6_withdraw", "frr", "bird", 6, "MP_UNREACH_NLRI IPv6 (a withdrawal)",
     lambda m: is_update(m) and mp_unreach(m, 2)),
    ("update_frr_ipv4_mp_unreach", "frr", "bird", 6, "MP_UNREACH_NLRI IPv4: withdrawal of an "
     "IPv4 route sent with an IPv6 next hop (RFC 8950)",
     lambda m: is_update(m) and mp_unreach(m, 1)),
    ("update_frr_as4_path", "frr", "exabgp", 4, "to a 2-octet AS speaker: AS_PATH with "
     "AS_TRANS and AS4_PATH with the 4-octet AS of GoBGP",
     lambda m: is_update(m) and 17 in attributes(m)),
    ("eor_frr_ipv4", "frr", "bird", 4, "End-of-RIB IPv4 unicast (an empty UPDATE)",
     lambda m: m == b"\xff" * 16 + b"\x00\x17\x02\x00\x00\x00\x00"),
    ("eor_frr_ipv6", "frr", "bird", 6, "End-of-RIB IPv6 unicast (empty MP_UNREACH_NLRI)",
     lambda m: is_update(m) and len(m) == 29 and 15 in attributes(m)),
    ("update_bird_ipv4_communities", "bird", "frr", 4, "IPv4 NLRI with COMMUNITIES and "
     "LARGE_COMMUNITY (BIRD export filter)", lambda m: is_update(m) and 32 in attributes(m)),
    ("update_bird_ipv6_link_local", "bird", "frr", 6, "MP_REACH_NLRI IPv6 with a global and a "
     "link-local next hop", lambda m: is_update(m) and mp_reach_afi(m, 2, 32)),
    ("eor_bird_ipv6", "bird", "frr", 6, "End-of-RIB IPv6 unicast",
     lambda m: is_update(m) and len(m) == 29 and 15 in attributes(m)),
    ("route_refresh_frr", "frr", "bird", 4, "ROUTE-REFRESH IPv4 unicast (clear bgp soft in)",
     lambda m: m[18] == 5 and m[21] == 0),
    ("route_refresh_bird_borr", "bird", "frr", 4, "enhanced route refresh: BoRR (RFC 7313)",
     lambda m: m[18] == 5 and m[21] == 1),
    ("route_refresh_bird_eorr", "bird", "frr", 4, "enhanced route refresh: EoRR (RFC 7313)",
     lambda m: m[18] == 5 and m[21] == 2),
    ("update_gobgp_ipv4", "gobgp", "frr", 4, "IPv4 NLRI from a 4-octet AS with COMMUNITIES "
     "and LARGE_COMMUNITY", lambda m: is_update(m) and nlri_len(m) > 0),
    ("eor_gobgp_ipv4", "gobgp", "frr", 4, "End-of-RIB IPv4 unicast",
     lambda m: m == b"\xff" * 16 + b"\x00\x17\x02\x00\x00\x00\x00"),
    ("update_exabgp_as_set", "exabgp", "frr", 4, "2-octet AS_PATH with an AS_SET, "
     "COMMUNITIES with NO_EXPORT", lambda m: is_update(m) and as_set(m)),
    ("update_exabgp_unknown_attribute", "exabgp", "frr", 4, "an unknown optional transitive "
     "attribute (type 0x99)", lambda m: is_update(m) and 0x99 in attributes(m)),
    ("notification_frr_shutdown", "frr", "bird", 4, "NOTIFICATION Cease / Administrative "
     "Shutdown with a shutdown communication (RFC 9003)",
     lambda m: m[18] == 3 and m[19] == 6 and m[20] == 2),
]


def main():
    work, out, versions = sys.argv[1], sys.argv[2], sys.argv[3]
    catalogue = []  # (sender, receiver, transport, connection, index, message)
    for link, peer in LINK_PEER.items():
        for connection, ((src, sport, dst, dport), data) in enumerate(
                streams(os.path.join(work, f"{link}.pcap"))):
            # FRR holds .1 / ::1 on every link, its peers .2 / ::2.
            sender = "frr" if src.packed[-1] == 1 else peer
            receiver = peer if sender == "frr" else "frr"
            for index, message in enumerate(messages(data)):
                catalogue.append((sender, receiver, src.version, connection, index, message))
    with open(os.path.join(work, "messages.txt"), "w") as listing:
        for sender, receiver, transport, connection, index, message in catalogue:
            listing.write(f"{sender}->{receiver} v{transport} conn {connection} #{index} "
                          f"{TYPES.get(message[18], message[18])}: {message.hex()}\n")
    os.makedirs(out, exist_ok=True)
    missing = []
    for name, sender, receiver, transport, description, predicate in RULES:
        match = next((m for s, r, t, _, _, m in catalogue
                      if (s, r, t) == (sender, receiver, transport) and predicate(m)), None)
        if match is None:
            missing.append(name)
            continue
        with open(os.path.join(out, f"{name}.hex"), "w") as f:
            f.write(f"# {description}.\n")
            f.write(f"# {sender} -> {receiver} over IPv{transport}; {versions}.\n")
            f.write("# Recorded by scripts/capture-bgp-golden (lab and configs there).\n")
            for at in range(0, len(message := match), 16):
                f.write(message[at:at + 16].hex(" ") + "\n")
    print(f"{len(RULES) - len(missing)} golden messages written to {out}; "
          f"{len(catalogue)} captured (listed in {work}/messages.txt)")
    if missing:
        print("no capture matched:", ", ".join(missing))
        sys.exit(1)


if __name__ == "__main__":
    main()
