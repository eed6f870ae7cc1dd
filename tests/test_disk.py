"""Disk usage as `df -Pk` prints it, what `status` says about it, and the argv and parsers of prune."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from pipeline.compose import Project
from pipeline.config import load_config
from pipeline.disk import DiskUsage, disk_lines, disk_usage, free_kib, human_bytes, parse_df, parse_disk
from pipeline.engine.values import UnitState
from pipeline.errors import ConfigError
from pipeline.operate import render_status, status_data
from pipeline.targets import composeprune as cp

DF = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/mapper/vg-root  102687672 94474658   8213014      93% /
"""


def test_df_posix_output_is_parsed_from_the_right_so_names_with_spaces_survive() -> None:
    odd = "Filesystem 1024-blocks Used Available Capacity Mounted on\nmy fs 100 40 60 40% /mnt/with space\n"
    assert parse_df(DF) == [("/dev/mapper/vg-root", "/", 102687672, 94474658, 8213014, 93)]
    assert parse_df(odd) == [("my fs", "/mnt/with space", 100, 40, 60, 40)]
    assert parse_df("df: /nowhere: No such file or directory\n") == []


def test_the_disk_script_reports_the_app_path_and_docker_root_sections() -> None:
    out = f"--pl-df app\n{DF}--pl-df docker /var/lib/docker\n{DF}"
    app, docker = parse_disk("/srv/app", out)
    assert (app.role, app.path, app.used_percent) == ("app", "/srv/app", 93)
    assert (docker.role, docker.path) == ("docker", "/var/lib/docker")
    assert free_kib([app, docker]) == 8213014  # one filesystem counted once


def test_the_disk_script_runs_on_a_path_that_does_not_exist_yet(tmp_path: object) -> None:
    done = subprocess.run(list(disk_usage("/nowhere/yet/app")), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    (app, *_) = parse_disk("/nowhere/yet/app", done.stdout)
    assert app.mounted_on.startswith("/") and 0 <= app.used_percent <= 100


def usage(percent: int, role: str = "app", mount: str = "/") -> DiskUsage:
    path = "/srv/app" if role == "app" else "/var/lib/docker"
    return DiskUsage(role, path, "/dev/sda1", mount, 1024 * 1024 * 100, 0, 1024 * 1024 * 9, percent)


def test_status_warns_at_or_past_the_threshold_and_names_the_prune_command() -> None:
    lines = disk_lines([usage(91)], 85, "prod")
    assert lines[0] == "  disk: /srv/app on /: 91% used, 9.0 GiB free of 100.0 GiB"
    assert lines[1].startswith("  WARNING: the disk of /srv/app (/) is 91% full (warns at 85%)")
    assert "`invoke prune --env prod`" in lines[1]
    assert len(disk_lines([usage(84)], 85, "prod")) == 1


def test_docker_root_on_another_filesystem_gets_its_own_line() -> None:
    same = disk_lines([usage(50), usage(50, "docker")], 85, "p")
    assert same == [
        "  disk: /srv/app on /: 50% used, 9.0 GiB free of 100.0 GiB (also docker's data root /var/lib/docker)"
    ]
    other = DiskUsage("docker", "/var/lib/docker", "/dev/sdb", "/var", 100, 90, 10, 90)
    lines = disk_lines([usage(50), other], 85, "p")
    assert lines[1] == "  disk: docker's data root /var/lib/docker on /var: 90% used, 10 KiB free of 100 KiB"
    assert lines[2].startswith("  WARNING: the disk of /var/lib/docker (/var) is 90% full")


def test_status_text_and_json_carry_the_disk_figures() -> None:
    state = UnitState("h1", facts={"disk": [usage(91)], "disk_warn_percent": 85.0})
    assert "  WARNING: the disk of /srv/app (/) is 91% full" in "\n".join(render_status("prod", [state]))
    host = json.loads(json.dumps(status_data("prod", [state])))["hosts"][0]
    assert "helm" not in host
    fs = host["disk"]["filesystems"][0]
    assert host["disk"]["warn_percent"] == 85.0
    assert (fs["used_percent"], fs["available_bytes"], fs["warning"]) == (91, 9 * 1024**3, True)
    unread = UnitState("h2", facts={"disk": [], "disk_warn_percent": 85.0})
    assert "  disk: could not be read" in render_status("prod", [unread])


def test_human_sizes() -> None:
    assert [human_bytes(k) for k in (12, 2048, 5 * 1024**2 + 1024**2 // 10)] == ["12 KiB", "2 MiB", "5.1 GiB"]


def config(**env: object) -> dict[str, object]:
    return {"environments": {"prod": {"target": "compose", "hosts": ["web1"], "path": "/srv/app", **env}}}


def test_prune_keep_and_disk_threshold_are_configured_per_environment() -> None:
    env = load_config(config(prune={"keep": 5}, disk={"warn_percent": 70})).environment("prod")
    assert (env.prune.keep, env.disk.warn_percent, env.deadlines.prune) == (5, 70, 600)  # type: ignore[union-attr]
    default = load_config(config()).environment("prod")
    assert (default.prune.keep, default.disk.warn_percent) == (3, 85)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"prune": {"keep": 0}}, "pipeline.environments.prod.prune.keep: 0 must be between 1 and 1000"),
        ({"disk": {"warn_percent": 101}}, "pipeline.environments.prod.disk.warn_percent: 101 must be"),
        ({"prune": {"kepe": 2}}, "pipeline.environments.prod.prune.kepe: unknown key (did you mean `keep`?)"),
    ],
)
def test_bad_prune_or_disk_settings_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config(**section))
    assert message in str(caught.value)


IMAGE = Project(
    "/srv/app", "deploy/compose.yaml", "app", "APP_VERSION", "image", "/srv/app.pipeline/releases"
)
GIT = Project("/srv/app", "compose.yaml", "app", "APP_VERSION", "git", "/srv/app.pipeline/releases")


def test_the_inventory_passes_every_value_as_a_positional_parameter() -> None:
    argv = cp.inventory(IMAGE)
    assert argv[:2] == ("sh", "-c") and argv[3] == "pl-inventory"
    assert argv[4:] == (
        "/srv/app.pipeline/releases", "/srv/app", "APP_VERSION", cp.SENTINEL, "app", "", "compose.yaml"
    )  # fmt: skip
    assert cp.inventory(GIT)[-2:] == ("/srv/app/compose.yaml", "")


def test_removal_argv_is_never_forced() -> None:
    assert cp.remove_image("app/api:1.0.0") == ("docker", "image", "rm", "--", "app/api:1.0.0")
    assert cp.remove_folder("/srv/app.pipeline/releases/1.0.0") == (
        "rm", "-rf", "--", "/srv/app.pipeline/releases/1.0.0"
    )  # fmt: skip


INVENTORY = f"""--pl-section releases
1.0.0
1.1.0
not a version!
--pl-section images
10.200.0.1:15000/app/api:1.0.0\t120MB
10.200.0.1:15000/app/api:1.1.0\t121MB
docker.io/library/redis:7\t40MB
busybox:latest\t4MB
<none>:<none>\t1MB
--pl-section used
10.200.0.1:15000/app/api:1.1.0
--pl-section template checkout
10.200.0.1:15000/app/api:{cp.SENTINEL}
busybox:latest
--pl-section template 1.0.0
--pl-failed
"""


def test_the_inventory_keeps_only_version_folders_and_sentinel_tagged_names() -> None:
    stock = cp.parse_inventory(INVENTORY)
    assert stock.folders == ("1.0.0", "1.1.0")
    assert stock.templates == (f"10.200.0.1:15000/app/api:{cp.SENTINEL}",)
    assert "redis:7" in stock.images and "<none>:<none>" not in stock.images
    assert stock.used == {"10.200.0.1:15000/app/api:1.1.0"}
    assert stock.unreadable == ("1.0.0",)
    plan = stock.plan("1.0.0", IMAGE)
    assert plan.images == ("10.200.0.1:15000/app/api:1.0.0",)
    assert plan.folder == "/srv/app.pipeline/releases/1.0.0"
    assert stock.plan("0.9.0", IMAGE).images == ()  # no such image on the host


def test_a_name_with_the_sentinel_outside_its_tag_is_not_a_per_version_image() -> None:
    templates = [
        f"reg:5000/{cp.SENTINEL}/api:latest",
        f"app/api:{cp.SENTINEL}-slim",
        f"x@sha256:{cp.SENTINEL}",
    ]
    assert cp.refs_for(templates, "2.0.0") == ["app/api:2.0.0-slim"]


def test_dockers_refusals_are_told_apart() -> None:
    assert cp.in_use(
        "Error response from daemon: conflict: unable to remove repository reference (must force)"
    )
    assert cp.gone("Error: No such image: app/api:1.0.0")
    assert not cp.in_use("permission denied") and not cp.gone("permission denied")
    assert shlex.join(cp.remove_image("a b")) == "docker image rm -- 'a b'"
