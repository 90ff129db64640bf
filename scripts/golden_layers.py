#!/usr/bin/env python3
"""Writes three small, deterministic OCI layer tars (lowest first) exercising whiteouts:
deletions, an opaque directory, a directory replaced by a file, delete-and-recreate in one
layer, a rename, hard links, symlinks, devices and xattrs.

usage: golden_layers.py OUTDIR   (writes OUTDIR/layer1.tar, layer2.tar, layer3.tar)
"""
import io
import os
import sys
import tarfile

MTIME = 1_700_000_000


def add(t, name, kind="file", data=b"", mode=0o644, uid=0, gid=0, link="", xattrs=None,
        dev=(0, 0)):
    i = tarfile.TarInfo(name)
    i.mtime = MTIME
    i.uid, i.gid, i.mode = uid, gid, mode
    if xattrs:
        i.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    if kind == "file":
        i.size = len(data)
        t.addfile(i, io.BytesIO(data))
        return
    i.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "link": tarfile.LNKTYPE,
              "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    i.linkname = link
    i.devmajor, i.devminor = dev
    t.addfile(i)


def layer(path, entries):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            add(t, *e[:2], **e[2]) if len(e) > 2 else add(t, *e)


def main(out):
    os.makedirs(out, exist_ok=True)
    big = bytes((i * 7 + i // 4096) % 251 for i in range(3 * 4096 + 100))
    layer(os.path.join(out, "layer1.tar"), [
        ("./", "dir", {"mode": 0o755}),
        ("etc/", "dir", {"mode": 0o755}),
        ("etc/hosts", "file", {"data": b"127.0.0.1 localhost\n", "xattrs": {"user.note": "base"}}),
        ("etc/passwd", "file", {"data": b"root:x:0:0::/root:/bin/sh\n"}),
        ("bin/", "dir", {"mode": 0o755}),
        ("bin/tool", "file", {"data": big, "mode": 0o755}),
        ("bin/sh", "symlink", {"link": "tool", "mode": 0o777}),
        ("opq/", "dir", {"mode": 0o750, "uid": 7}),
        ("opq/a/", "dir", {}),
        ("opq/a/f", "file", {"data": b"lower f"}),
        ("opq/k", "file", {"data": b"lower k"}),
        ("del/", "dir", {}),
        ("del/sub/", "dir", {}),
        ("del/sub/x", "file", {"data": b"x"}),
        ("hl/", "dir", {}),
        ("hl/a", "file", {"data": b"linked", "uid": 1000, "gid": 1000}),
        ("hl/b", "link", {"link": "hl/a", "uid": 1000, "gid": 1000}),
        ("dev/", "dir", {}),
        ("dev/null", "chr", {"dev": (1, 3), "mode": 0o666}),
        ("mv/", "dir", {}),
        ("mv/src.txt", "file", {"data": b"moved"}),
    ])
    layer(os.path.join(out, "layer2.tar"), [
        ("./", "dir", {"mode": 0o755}),
        (".wh.del", "file", {}),
        ("opq/", "dir", {"mode": 0o755}),
        ("opq/.wh..wh..opq", "file", {}),
        ("opq/n", "file", {"data": b"new in an opaque dir"}),
        ("etc/", "dir", {"mode": 0o755}),
        ("etc/hosts", "file", {"data": b"changed\n", "xattrs": {"user.note": "changed"}}),
        ("mv/", "dir", {}),
        ("mv/.wh.src.txt", "file", {}),
        ("mv/dst.txt", "file", {"data": b"moved"}),
        ("bin/", "dir", {"mode": 0o755}),
        ("bin/tool-copy", "file", {"data": big, "mode": 0o755}),
    ])
    layer(os.path.join(out, "layer3.tar"), [
        ("./", "dir", {"mode": 0o755}),
        ("del", "file", {"data": b"del is a file now", "mode": 0o600}),
        ("etc/", "dir", {"mode": 0o755}),
        ("etc/.wh.hosts", "file", {}),
        ("etc/hosts", "file", {"data": b"recreated\n", "mode": 0o600}),
        ("bin/", "dir", {"mode": 0o755}),
        ("bin/.wh.sh", "file", {}),
    ])


if __name__ == "__main__":
    main(sys.argv[1])
