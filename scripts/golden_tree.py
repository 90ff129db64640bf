#!/usr/bin/env python3
"""Creates the small source tree of the golden vectors and prints its listing.

usage: golden_tree.py DIR      create DIR (must not exist) and print its listing
       golden_tree.py --list DIR   print the listing of an existing tree

The listing format is the one of nydus_core::listing (one tab-separated line per entry).
"""
import hashlib
import os
import stat
import sys

MTIME = 1700000000


def create(root):
    os.makedirs(root)
    def w(p, data, mode=0o644):
        with open(os.path.join(root, p), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(root, p), mode)
    os.makedirs(os.path.join(root, "dir/sub"))
    w("hello.txt", b"hello\n")
    w("empty", b"")
    w("three-chunks.bin", bytes((i * 7) % 251 for i in range(9000)))
    w("dir/copy.bin", bytes((i * 7) % 251 for i in range(9000)))
    w("dir/sub/exec.sh", b"#!/bin/sh\necho hi\n", 0o755)
    w("zeros.bin", bytes(8192))
    os.link(os.path.join(root, "hello.txt"), os.path.join(root, "dir/hardlink"))
    os.symlink("hello.txt", os.path.join(root, "link"))
    os.symlink("x" * 300, os.path.join(root, "dir/long-link"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.mknod(os.path.join(root, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(root, "blk"), 0o660 | stat.S_IFBLK, os.makedev(8, 1))
    os.setxattr(os.path.join(root, "hello.txt"), "user.greeting", b"hi")
    os.chown(os.path.join(root, "dir/sub/exec.sh"), 1000, 1000)  # before the capability: chown drops it
    os.setxattr(os.path.join(root, "dir/sub/exec.sh"), "security.capability",
                bytes([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
    os.setxattr(os.path.join(root, "dir"), "trusted.note", b"t")
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for n in files + dirs:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))


def listing(root):
    out = []
    def line(path, full, is_root):
        st = os.lstat(full)
        m = st.st_mode
        kind = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "chardev",
                stat.S_IFBLK: "blockdev", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}[stat.S_IFMT(m)]
        if kind == "file":
            with open(full, "rb") as f:
                content = hashlib.sha256(f.read()).hexdigest()
        elif kind == "symlink":
            content = os.readlink(full).encode().hex()
        elif kind in ("chardev", "blockdev"):
            content = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        else:
            content = "-"
        xs = sorted(f"{k}={os.getxattr(full, k, follow_symlinks=False).hex()}"
                    for k in os.listxattr(full, follow_symlinks=False))
        size = 0 if kind == "dir" else st.st_size
        mtime = 0 if is_root else int(st.st_mtime)
        out.append(f"{path}\t{kind}\t{stat.S_IMODE(m):o}\t{st.st_uid}:{st.st_gid}\t{mtime}\t{size}\t{content}\t"
                   + (",".join(xs) if xs else "-"))
    def walk(rel, full):
        for name in sorted(os.listdir(full), key=os.fsencode):
            p = rel + "/" + name
            f = os.path.join(full, name)
            line(p, f, False)
            if stat.S_ISDIR(os.lstat(f).st_mode):
                walk(p, f)
    line("/", root, True)
    walk("", root)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if sys.argv[1] == "--list":
        sys.stdout.write(listing(sys.argv[2]))
    else:
        create(sys.argv[1])
        sys.stdout.write(listing(sys.argv[1]))
