"""The file source sees in-place edits, atomic renames, kubelet-style symlink swaps and re-creation."""

import asyncio
import os

from mlserving.server.router.sources import FileSource


async def until(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def collect(path, steps):
    """Run the source while ``steps`` change the file, each once the source delivered what came
    before it; return what it delivered (events, not sleeps: a busy machine only makes it slower)."""
    seen: list[bytes] = []
    task = asyncio.create_task(FileSource(str(path), interval_s=0.02).run(lambda raw, origin: seen.append(raw)))
    delivered = 1 if path.exists() else 0
    for step in steps:
        await until(lambda n=delivered: len(seen) >= n, f"delivery {delivered}")
        step()
        delivered += 1 if path.exists() else 0
    await until(lambda: len(seen) >= delivered, f"delivery {delivered}")
    await asyncio.sleep(0.1)  # a few more polls: nothing may be delivered twice
    task.cancel()
    return seen


def test_edits_renames_and_recreation_are_delivered_once_each(tmp_path):
    path = tmp_path / "routing.json"
    path.write_bytes(b"v1")

    def rename_in(content):
        def step():
            (tmp_path / "new").write_bytes(content)
            os.replace(tmp_path / "new", path)
        return step

    steps = [lambda: path.write_bytes(b"v2-longer"), rename_in(b"v3"), path.unlink,
             lambda: path.write_bytes(b"v4")]
    assert asyncio.run(collect(path, steps)) == [b"v1", b"v2-longer", b"v3", b"v4"]


def test_kubelet_style_symlink_swap_is_delivered(tmp_path):
    # A mounted ConfigMap: routing.json -> ..data/routing.json, ..data -> a timestamped directory.
    for name, content in (("ts1", b"first"), ("ts2", b"second")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "routing.json").write_bytes(content)
    os.symlink("ts1", tmp_path / "..data")
    os.symlink("..data/routing.json", tmp_path / "routing.json")

    def swap():
        os.symlink("ts2", tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    assert asyncio.run(collect(tmp_path / "routing.json", [swap])) == [b"first", b"second"]


def test_missing_file_is_waited_for(tmp_path):
    path = tmp_path / "later.json"
    assert asyncio.run(collect(path, [lambda: path.write_bytes(b"now")])) == [b"now"]
