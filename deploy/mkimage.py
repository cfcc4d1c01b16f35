#!/usr/bin/env python3
"""Builds the kata-monitor OCI image, multi-arch, without a container engine.

    deploy/build-static.sh all            # target/static/<arch>/kata-monitor
    python3 deploy/mkimage.py             # target/image/kata-monitor.tar

Writes an OCI image layout (https://github.com/opencontainers/image-spec,
image-layout.md) as a tar archive: one image index listing one image per
architecture found under target/static/ (x86_64, aarch64, s390x, ppc64le;
--arch to choose, --require-all to insist on all four). Each image is a
single gzip layer on an empty base ("FROM scratch") holding

    etc/passwd, etc/group        root (0), nonroot (65532), nobody (65534),
                                 as distroless/static has them, so the image
                                 can also run as a named non-root user
    usr/bin/kata-monitor         the static binary, 0755 root:root

with upstream's layout: ENTRYPOINT ["/usr/bin/kata-monitor"], user 0:0 (see
deploy/README.md for why uid 0 without capabilities), port 8090, and as CMD
the drop-in arguments (replaced by whatever a DaemonSet passes as args).
Labels (config) and annotations (manifests, index) carry the OCI keys:
version (Cargo.toml), revision (git commit), created, licenses, title.

Reproducible: the same binaries and commit give byte-identical blobs. Every
tar entry has a fixed mtime (SOURCE_DATE_EPOCH, default: the commit's time),
uid/gid 0 and no user/group names, entries are sorted, gzip has mtime 0 and
no file name, JSON is written with sorted keys. Nothing reads the clock.

Load it:  ctr -n k8s.io images import target/image/kata-monitor.tar
Push it:  skopeo copy --all oci-archive:target/image/kata-monitor.tar \\
              docker://REGISTRY/kata-monitor:VERSION

Only the Python standard library; a Debian-packaged builder (buildah, umoci)
would pull in a container storage stack for what is three JSON documents and
one tar file.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# uname -m name -> OCI platform architecture (image-spec config.md).
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppc64le"}

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Upstream's image: ENTRYPOINT ["/usr/bin/kata-monitor"]. The CMD is the
# DaemonSet's arguments (deploy/kata-monitor-daemonset.yaml, checked by
# deploy/validate.py), so `ctr run` / `docker run` of the bare image works.
ENTRYPOINT = ["/usr/bin/kata-monitor"]
CMD = [
    "-listen-address=0.0.0.0:8090",
    "-runtime-endpoint=/run/containerd/containerd.sock",
    "-log-level=info",
    "-sandbox-dirs=/run/vc/sbs,/run/kata",
]

PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def git(*args):
    try:
        out = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cargo_version():
    in_package = False
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                in_package = line == "[package]"
            elif in_package and line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"')
    sys.exit("mkimage: no version in Cargo.toml [package]")


def layer_tar(binary, mtime):
    """The single layer: an uncompressed tar with sorted, normalized entries."""
    with open(binary, "rb") as f:
        exe = f.read()
    entries = [
        ("etc/", None, 0o755),
        ("etc/group", GROUP.encode(), 0o644),
        ("etc/passwd", PASSWD.encode(), 0o644),
        ("usr/", None, 0o755),
        ("usr/bin/", None, 0o755),
        ("usr/bin/kata-monitor", exe, 0o755),
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode in sorted(entries):
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = mtime, mode, 0, 0, "", ""
            if data is None:
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def gzip_fixed(data):
    # mtime=0 and no file name in the header; level 9 for a smaller pull.
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as g:
        g.write(data)
    return out.getvalue()


def build(arches, static_dir, name, mtime, version, revision):
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    labels = {
        "org.opencontainers.image.title": "kata-monitor",
        "org.opencontainers.image.description":
            "Prometheus exporter for Kata Containers sandboxes (drop-in for the Go kata-monitor)",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    blobs = {}

    def add(data):
        blobs[digest(data)] = data
        return digest(data)

    manifests = []
    for arch in arches:
        binary = os.path.join(static_dir, arch, "kata-monitor")
        layer = layer_tar(binary, mtime)
        layer_gz = gzip_fixed(layer)
        config = canon({
            "created": created,
            "architecture": ARCHES[arch],
            "os": "linux",
            "config": {
                "User": "0:0",
                "ExposedPorts": {"8090/tcp": {}},
                "Entrypoint": ENTRYPOINT,
                "Cmd": CMD,
                "WorkingDir": "/",
                "Labels": labels,
            },
            "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
            "history": [{"created": created, "created_by": "deploy/mkimage.py"}],
        })
        manifest = canon({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": add(config), "size": len(config)},
            "layers": [{"mediaType": MT_LAYER, "digest": add(layer_gz), "size": len(layer_gz)}],
            "annotations": labels,
        })
        manifests.append({
            "mediaType": MT_MANIFEST,
            "digest": add(manifest),
            "size": len(manifest),
            "platform": {"architecture": ARCHES[arch], "os": "linux"},
        })
        print(f"mkimage: {arch:8} {ARCHES[arch]:8} binary {os.path.getsize(binary):>9} B, "
              f"layer {len(layer_gz):>9} B gzip, manifest {manifests[-1]['digest']}")
    image_index = canon({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": manifests,
        "annotations": labels,
    })
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    layout_index = canon({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_INDEX,
            "digest": add(image_index),
            "size": len(image_index),
            "annotations": {
                # containerd's `ctr images import` names the image from this;
                # skopeo, podman and docker read the tag from ref.name.
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    })
    return blobs, layout_index, digest(image_index)


def write_layout(path, blobs, layout_index, mtime):
    files = [("oci-layout", canon({"imageLayoutVersion": "1.0.0"})), ("index.json", layout_index)]
    files += [(f"blobs/sha256/{d[7:]}", blobs[d]) for d in sorted(blobs)]
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        for dname in ("blobs", "blobs/sha256"):
            ti = tarfile.TarInfo(dname)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
            t.addfile(ti)
        for fname, data in files:
            ti = tarfile.TarInfo(fname)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, mtime
            t.addfile(ti, io.BytesIO(data))
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--static-dir", default=os.path.join(ROOT, "target/static"),
                   help="where build-static.sh put <arch>/kata-monitor")
    p.add_argument("--out", default=os.path.join(ROOT, "target/image/kata-monitor.tar"))
    p.add_argument("--name", help="image name (default localhost/kata-monitor:<version>)")
    p.add_argument("--arch", action="append", choices=sorted(ARCHES),
                   help="architecture to include (repeatable; default: every one built)")
    p.add_argument("--require-all", action="store_true",
                   help="fail unless all four architectures are included")
    a = p.parse_args()

    version = cargo_version()
    revision = os.environ.get("KATA_MONITOR_COMMIT") or git("rev-parse", "--short=12", "HEAD") or "unknown"
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct") or "0"
    mtime = int(epoch)
    name = a.name or f"localhost/kata-monitor:{version}"

    found = [x for x in ARCHES if os.path.isfile(os.path.join(a.static_dir, x, "kata-monitor"))]
    arches = a.arch or found
    missing = [x for x in (ARCHES if a.require_all else arches) if x not in found]
    if missing or not arches:
        sys.exit(f"mkimage: no binary for {', '.join(missing) or 'any architecture'} under "
                 f"{a.static_dir} (run deploy/build-static.sh all)")
    arches = [x for x in ARCHES if x in arches]  # fixed order

    blobs, layout_index, index_digest = build(arches, a.static_dir, name, mtime, version, revision)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write_layout(a.out, blobs, layout_index, mtime)
    print(f"mkimage: {name} ({', '.join(ARCHES[x] for x in arches)}), revision {revision}, "
          f"created {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(mtime))}")
    print(f"mkimage: index {index_digest}")
    print(a.out)


if __name__ == "__main__":
    main()
