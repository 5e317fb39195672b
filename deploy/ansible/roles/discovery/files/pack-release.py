#!/usr/bin/env python3
"""Packs the agent's code into a reproducible archive, on the control machine.

Usage: pack-release.py SOURCE_DIR OUT_DIR
Prints {"path", "sha256", "version"} as JSON. The same sources always give the
same bytes (sorted entries, no timestamps, no owners), so the archive's hash
names the release: a host that already has it is left alone, and any change to
the code makes a new release. package.json is the last entry: once it exists
on a host, the release was unpacked completely.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

TREES = ['bin', 'src']
LAST = ['package-lock.json', 'package.json']


def entries(source):
    for tree in TREES:
        for root, dirs, files in os.walk(os.path.join(source, tree)):
            dirs.sort()
            rel = os.path.relpath(root, source)
            yield rel, True
            for name in sorted(files):
                yield os.path.join(rel, name), False
    for name in LAST:
        yield name, False


def pack(source):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for rel, is_dir in entries(source):
            path = os.path.join(source, rel)
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = 'root'
            if is_dir:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            with open(path, 'rb') as f:
                data = f.read()
            info.size = len(data)
            # Executables (bin/discovery.js, which systemd runs) keep their bit.
            info.mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode='wb', mtime=0, filename='') as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def main():
    source, out_dir = sys.argv[1], sys.argv[2]
    with open(os.path.join(source, 'package.json')) as f:
        version = json.load(f)['version']
    data = pack(source)
    sha = hashlib.sha256(data).hexdigest()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(os.path.abspath(out_dir), f'discovery-{version}-{sha[:12]}.tar.gz')
    with open(path, 'wb') as f:
        f.write(data)
    print(json.dumps({'path': path, 'sha256': sha, 'version': version}))


if __name__ == '__main__':
    main()
