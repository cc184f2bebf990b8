"""The init container that downloads an http(s) storageUri into an emptyDir.

The server image has no ``fetch-model`` subcommand, so the init container runs the image's Python
with this stdlib-only script (``python -c SCRIPT URL DEST``). The URL must point at a tar archive
(any compression tarfile reads: .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) of one model version
directory, with ``metadata.json`` at its top or inside a single top-level folder. The server
verifies every artifact's sha256 from metadata.json before it turns ready, so a corrupted download
never serves.
"""

MODEL_DIR = "/mnt/models"

SCRIPT = r'''
import os, shutil, sys, tarfile, tempfile, urllib.request
url, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
with tempfile.TemporaryFile(dir=dest) as buf:
    with urllib.request.urlopen(url, timeout=60) as resp:
        shutil.copyfileobj(resp, buf, 1 << 20)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            for m in tar.getmembers():
                if m.name.startswith("/") or ".." in m.name.split("/") or not (m.isfile() or m.isdir()):
                    sys.exit("refusing archive member %r" % m.name)
            tar.extractall(dest)
entries = [e for e in os.listdir(dest) if not e.startswith(".")]
if "metadata.json" not in entries and len(entries) == 1 and os.path.isdir(os.path.join(dest, entries[0])):
    top = os.path.join(dest, entries[0])
    for e in os.listdir(top):
        os.rename(os.path.join(top, e), os.path.join(dest, e))
    os.rmdir(top)
if not os.path.isfile(os.path.join(dest, "metadata.json")):
    sys.exit("no metadata.json in the archive from %s" % url)
print("fetched %s into %s: %s" % (url, dest, sorted(os.listdir(dest))))
'''.strip()


def command(url: str, dest: str = MODEL_DIR) -> list[str]:
    return ["python", "-c", SCRIPT, url, dest]
