"""Image builds: the base image without a registry, Toxiproxy from its Go
module, and one image per folder of compose/images, rebuilt only when the
folder's inputs change (the tag is a hash of them).

Builds run side by side (the base image beside Toxiproxy's `go install`, then the
images three at a time: mostly package downloads), under a lock on the engine's
host, so that two callers at once (two CI sessions, two users) build each image once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.errors import PgchaosError

BASE_IMAGE = "debian:trixie-slim"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.12.0"
IMAGE_PREFIX = "pgchaos"

Progress = Callable[[str], None]


def images_dir(compose_dir: Path) -> Path:
    return compose_dir / "images"


def inputs_hash(compose_dir: Path) -> str:
    """Hash of every file that goes into the images (Dockerfiles and their context)."""
    digest = hashlib.sha256()
    root = images_dir(compose_dir)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or "bin" in rel.parts:
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    digest.update(f"{BASE_IMAGE} {TOXIPROXY_VERSION}".encode())
    return digest.hexdigest()[:12]


def image_names(compose_dir: Path) -> list[str]:
    return sorted(p.name for p in images_dir(compose_dir).iterdir() if (p / "Dockerfile").exists())


def _image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


def _run(cmd: list[str], what: str, **kwargs) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise PgchaosError(f"{what} failed: {' | '.join(tail)}")


def ensure_base_image(compose_dir: Path, progress: Progress) -> None:
    """Bootstrap debian:trixie-slim with debootstrap when it cannot be pulled."""
    if _image_exists(BASE_IMAGE):
        return
    script = compose_dir / "scripts" / "bootstrap-base-image.sh"
    progress(f"building base image {BASE_IMAGE} (debootstrap, no registry)")
    _run(["bash", str(script), BASE_IMAGE], "base image bootstrap")


def ensure_toxiproxy_binaries(compose_dir: Path, progress: Progress) -> None:
    """go install Toxiproxy's server and cli into compose/images/toxiproxy/bin."""
    bin_dir = images_dir(compose_dir) / "toxiproxy" / "bin"
    stamp = bin_dir / "VERSION"
    if stamp.exists() and stamp.read_text().strip() == TOXIPROXY_VERSION:
        return
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise PgchaosError("Go is needed to build Toxiproxy: apt-get install golang-go (Go >= 1.23)")
    progress(f"building Toxiproxy {TOXIPROXY_VERSION} with go install")
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(bin_dir.resolve()), "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
    for cmd in ("server", "cli"):
        _run([go, "install", f"{TOXIPROXY_MODULE}/cmd/{cmd}@{TOXIPROXY_VERSION}"], "go install", env=env)
    stamp.write_text(TOXIPROXY_VERSION + "\n")


PARALLEL_BUILDS = 3
LOCK_FILE = Path(tempfile.gettempdir()) / "pgchaos-images.lock"


@contextlib.contextmanager
def build_lock(progress: Progress) -> Iterator[None]:
    """Held while images are built: a second caller waits, then finds them built."""
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another pgchaos is building the images; waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _missing(compose_dir: Path, tag: str) -> list[str]:
    return [n for n in image_names(compose_dir) if not _image_exists(f"{IMAGE_PREFIX}/{n}:{tag}")]


def _build(compose_dir: Path, name: str, tag: str) -> None:
    _build_context(images_dir(compose_dir) / name,
                   [f"{IMAGE_PREFIX}/{name}:{tag}", f"{IMAGE_PREFIX}/{name}:latest"])


def _build_context(context: Path, tags: list[str]) -> None:
    _run(["docker", "build", "-q", "--force-rm", "--label", "io.pgchaos.image=pgchaos",
          *(arg for t in tags for arg in ("-t", t)), str(context)],
         f"docker build {context.name}", env={**os.environ, "DOCKER_BUILDKIT": "0"})


def ensure_images(compose_dir: Path, progress: Progress = print, extra: dict[str, Path] | None = None) -> str:
    """Build what is missing and return the image tag to run. ``extra``: an engine's own
    images (tag -> build folder, FROM the base image), built in the same pool."""
    tag = inputs_hash(compose_dir)

    def missing_extra() -> list[str]:
        return [ref for ref in (extra or {}) if not _image_exists(ref)]

    if not _missing(compose_dir, tag) and not missing_extra():
        return tag
    with build_lock(progress):
        missing, others = _missing(compose_dir, tag), missing_extra()  # built meanwhile by the lock's holder?
        if not missing and not others:
            return tag
        with ThreadPoolExecutor(max_workers=PARALLEL_BUILDS) as pool:
            base = pool.submit(ensure_base_image, compose_dir, progress)
            if "toxiproxy" in missing:
                pool.submit(ensure_toxiproxy_binaries, compose_dir, progress).result()
            base.result()
            progress(f"building {len(missing) + len(others)} images ({PARALLEL_BUILDS} at a time): "
                     f"{', '.join([*missing, *others])}" + (f" as {IMAGE_PREFIX}/NAME:{tag}" if missing else ""))
            builds = [pool.submit(_build, compose_dir, name, tag) for name in missing]
            builds += [pool.submit(_build_context, (extra or {})[ref], [ref]) for ref in others]
            for build in builds:
                build.result()
    return tag


# -- the Citus image (profile "citus") ------------------------------------------------------

CITUS_DEB_ENV = "PGCHAOS_CITUS_DEB"
CITUS_IMAGE_ENV = "PGCHAOS_CITUS_IMAGE"
CITUS_REPOSITORY_ENV = "PGCHAOS_CITUS_REPOSITORY"
CITUS_NEEDED = (f"the citus profile needs the Citus packages (Citus for PostgreSQL 17), which no registry "
                f"reachable here carries: "
                f"set {CITUS_DEB_ENV}=/path/to/postgresql-17-citus….deb, or {CITUS_IMAGE_ENV}=IMAGE (an image "
                f"with it), or {CITUS_REPOSITORY_ENV}=1 where the Citus package repository is reachable")


def citus_source() -> tuple[str, str]:
    """Where Citus comes from: ("image", REF), ("file", DEB) or ("repository", URL-or-1); one line if nowhere."""
    image = os.environ.get(CITUS_IMAGE_ENV, "").strip()
    if image:
        return "image", image
    deb = os.environ.get(CITUS_DEB_ENV, "").strip()
    if deb:
        path = Path(deb)
        if not path.is_file() or not path.name.startswith("postgresql-17-citus") or path.suffix != ".deb":
            raise PgchaosError(f"{CITUS_DEB_ENV}={deb!r}: not a postgresql-17-citus….deb file")
        return "file", str(path.resolve())
    repository = os.environ.get(CITUS_REPOSITORY_ENV, "").strip()
    if repository:
        return "repository", repository
    raise PgchaosError(CITUS_NEEDED)


def ensure_citus_image(citus_dir: Path, base_tag: str, progress: Progress = print) -> str:
    """The Citus image to run: the one named, or the reference image plus Citus from a package."""
    kind, where = citus_source()
    if kind == "image":
        if not _image_exists(where):
            raise PgchaosError(f"{CITUS_IMAGE_ENV}={where}: no such image on this engine")
        return where
    dockerfile = citus_dir / "image" / "Dockerfile"
    digest = hashlib.sha256(dockerfile.read_bytes() + base_tag.encode() + kind.encode())
    if kind == "file":
        digest.update(Path(where).read_bytes())
    else:
        digest.update(where.encode())
    ref = f"{IMAGE_PREFIX}/postgres-citus:{digest.hexdigest()[:12]}"
    if _image_exists(ref):
        return ref
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pgchaos-citus-") as tmp:
        context = Path(tmp)
        shutil.copy(dockerfile, context / "Dockerfile")
        (context / "packages").mkdir()
        if kind == "file":
            shutil.copy(where, context / "packages" / Path(where).name)
        else:
            (context / "packages" / ".none").write_text("")
        args = ["--build-arg", f"BASE_IMAGE={IMAGE_PREFIX}/postgres:{base_tag}",
                "--build-arg", f"CITUS_SOURCE={kind}"]
        if kind == "repository" and where != "1":
            args += ["--build-arg", f"CITUS_REPOSITORY={where}"]
        progress(f"building image {ref} (Citus from {'package ' + Path(where).name if kind == 'file' else kind})")
        _run(["docker", "build", "-q", "--force-rm", "--label", "io.pgchaos.image=pgchaos", *args,
              "-t", ref, "-t", f"{IMAGE_PREFIX}/postgres-citus:latest", str(context)],
             "docker build postgres-citus", env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return ref
