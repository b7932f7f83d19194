"""Provisioning a stack: what happens before the engine's `up` and around it (the run's
state folder, the config copy and its variant, images, pgchaos's env file, the ownership
override, run.json, loop-mounted data volumes) and the checks made before any engine
work (every manifest service in the compose files, host ports free and on 127.0.0.1).
The `Stack` calls it; nothing here judges health."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from typing import TYPE_CHECKING

from harness.engines.base import ownership_labels
from harness.errors import PgchaosError
from harness.stack import images, runs, volumes
from harness.stack import spec as spec_module
from harness.stack.manifest import Manifest, check_against_services
from harness.stack.runs import caller, runs_dir, state_root

if TYPE_CHECKING:
    from harness.stack.stack import Stack


def check_ports_free(published: list[tuple[str, str, int]], port_variables: bool = False) -> None:
    """Every fixed host port of the compose model is free and on 127.0.0.1. With
    `port_variables` (the reference stack's compose files read PGCHAOS_<NAME>_PORT),
    the hint names them; a user's compose file reads its own variables, if any."""
    for service, host_ip, port in published:
        if host_ip != "127.0.0.1":
            raise PgchaosError(
                f"{service} publishes a port on {host_ip or 'every interface'}: pgchaos provisions only "
                "stacks whose ports are published on 127.0.0.1 (write \"127.0.0.1:HOST:CONTAINER\")")
        if port == 0:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                how = ("set the PGCHAOS_<NAME>_PORT variable the compose file reads" if port_variables else
                       "publish another port in the compose file (or \"127.0.0.1::CONTAINER\": any free port)")
                raise PgchaosError(f"port 127.0.0.1:{port} is taken (needed for {service}); free it, or {how}") \
                    from None


def preflight(stack: Stack) -> None:
    """What can be checked before any engine work: the run's state folder, every
    manifest service in the compose files, host ports free and on 127.0.0.1."""
    if stack.manifest.images == "citus":
        images.citus_source()  # one line saying what to provide when there is no Citus package or image
    write_state(stack)
    try:
        check_against_services(stack.manifest, stack.deployment.services(every_profile=True))
        check_ports_free(stack.deployment.published_ports(), port_variables=reads_port_variables(stack.manifest))
    finally:
        shutil.rmtree(stack.state_dir, ignore_errors=True)
        for empty in (runs_dir(), runs.STATE_ROOT):  # leave no trace of a check
            with contextlib.suppress(OSError):
                empty.rmdir()


def reads_port_variables(manifest: Manifest) -> bool:
    """The compose files take host ports from PGCHAOS_<NAME>_PORT (the reference stack's do)."""

    return any(re.search(r"PGCHAOS_[A-Z_]+_PORT", (manifest.dir / f).read_text(errors="replace"))
               for f in manifest.compose_files)


def provision(stack: Stack) -> None:
    """Preflight, the run's state folder, images, env, ownership override, run.json, loop
    volumes, then the engine's `up` (its failure says what the health check saw)."""
    preflight(stack)
    write_state(stack)
    stack.docker  # noqa: B018 - fails early with one line when no engine answers
    if stack.manifest.images in ("reference", "citus"):
        stack.image_tag = images.ensure_images(spec_module.COMPOSE_DIR, stack.progress,
                                               extra=stack.deployment.engine_images())
    if stack.manifest.images == "citus":
        own = stack.manifest.dir / "image" / "Dockerfile"  # a stack's own recipe, else pgchaos's
        recipe_dir = stack.manifest.dir if own.is_file() else spec_module.COMPOSE_DIR / "citus"
        stack.citus_image = images.ensure_citus_image(recipe_dir, stack.image_tag, stack.progress)
    write_env(stack)
    stack.deployment.write_owner_override(
        stack.override_file, ownership_labels(stack.run_id, os.getpid(), stack.detached, str(state_root())))
    write_meta(stack)
    if stack.loop_members:
        stack.progress(f"creating {len(stack.loop_members)} loop-mounted data volumes")
    for node in stack.loop_members:
        volumes.create(stack.data_image(node), stack.data_mount(node), stack.manifest.volume_size_mb)
    try:
        stack.deployment.up(timeout_s=stack.up_timeout_s)
    except PgchaosError as exc:
        raise PgchaosError(f"{exc}; {stack.why_unhealthy()}") from None


def write_state(stack: Stack) -> None:
    """The run's state folder: the config copy (with the variant over it), backups, env."""
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    runs.claim(stack.state_dir)
    if stack.config_dir.exists():
        shutil.rmtree(stack.config_dir)
    if stack.manifest.config_dir is not None:
        shutil.copytree(stack.manifest.dir / stack.manifest.config_dir, stack.config_dir)
    else:
        stack.config_dir.mkdir()
    if stack.spec.variant_dir is not None:
        shutil.copytree(stack.spec.variant_dir, stack.config_dir, dirs_exist_ok=True)
    stack.backups_dir.mkdir(exist_ok=True)
    stack.override_file.write_text("{}\n")  # the ownership labels come once the model is known
    write_env(stack)


def write_env(stack: Stack) -> None:
    """pgchaos's own variables for the run (the engine layers them over the stack's)."""
    env = {
        "COMPOSE_PROJECT_NAME": stack.project,
        "PGCHAOS_RUN_ID": stack.run_id,
        "PGCHAOS_OWNER_PID": str(os.getpid()),
        "PGCHAOS_DETACHED": "true" if stack.detached else "false",
        "PGCHAOS_IMAGE_TAG": stack.image_tag,
        **({"PGCHAOS_CITUS_IMAGE": stack.citus_image} if stack.citus_image else {}),
        "PGCHAOS_DATA": str(stack.state_dir / "data"),
        "PGCHAOS_CONFIG": str(stack.config_dir),
        "PGCHAOS_BACKUPS": str(stack.backups_dir),
        **stack.spec.ports.as_env(),
    }
    stack.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))


def write_meta(stack: Stack) -> None:
    """run.json: what `pgchaos status`, `down`, `gc` and a later attach read."""
    meta = {
        "run_id": stack.run_id, "project": stack.project, "owner_pid": os.getpid(),
        "detached": stack.detached, "profile": stack.spec.profile, "variant": stack.spec.variant,
        "manifest": str(stack.manifest.path), "compose_dir": str(stack.manifest.dir),
        "compose_files": list(stack.manifest.compose_files),
        "ports": stack.spec.ports.__dict__, "image_tag": stack.image_tag,
        "engine": stack.spec.engine, **caller(),
    }
    runs.write_atomically(stack.state_dir / "run.json", json.dumps(meta, indent=2))
