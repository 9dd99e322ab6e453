# SPDX-License-Identifier: LGPL-2.1-or-later
"""`meson install` puts every shipped file where dbus-api.md's "Files shipped" table says, the
directories follow --prefix, the options override them, and configured files name the real binary."""

import configparser
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from busenv import REPO

BUS_NAME = "io.guestnetd.GuestNet1"
XML_FILES = [f"{BUS_NAME}.{iface}.xml" for iface in ("Manager", "Guest", "Nic")]
# Two files called guestnetd.conf: told apart by their source directory in `meson introspect`.
TMPFILES, EXAMPLE_CONF = "tmpfiles.d/guestnetd.conf", "conf/guestnetd.conf"


def meson_setup(build, *options):
    subprocess.run(["meson", "setup", str(build), str(REPO), "-Dtests=false", *options],
                   check=True, capture_output=True, text=True)


def installed_map(build):
    """meson introspect --installed: {source or build file: install path}."""
    res = subprocess.run(["meson", "introspect", str(build), "--installed"],
                         check=True, capture_output=True, text=True)
    out = {}
    for k, v in json.loads(res.stdout).items():
        key = Path(k).name
        if key == "guestnetd.conf":
            key = f"{Path(k).parent.name}/{key}"
        out[key] = v
    return out


def pkgconfig_unit_dir(prefix):
    res = subprocess.run(["pkg-config", f"--define-variable=rootprefix={prefix}",
                          "--variable=systemdsystemunitdir", "systemd"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else ""


def read_ini(path):
    p = configparser.ConfigParser(interpolation=None, strict=False)
    p.optionxform = str
    p.read(path)
    return p


@pytest.fixture(scope="module")
def tmp():
    d = Path(tempfile.mkdtemp(prefix="gnd-install."))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def destdir_install(tmp):
    """A --prefix=/usr build installed with --destdir."""
    build, dest = tmp / "build-usr", tmp / "dest"
    meson_setup(build, "--prefix=/usr")
    res = subprocess.run(["meson", "install", "-C", str(build), "--destdir", str(dest)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return dest


def expected_locations(prefix, unit_dir, sysconfdir=None):
    share = f"{prefix}/share"
    return {
        f"{BUS_NAME}.conf": f"{share}/dbus-1/system.d/{BUS_NAME}.conf",
        f"{BUS_NAME}.service": f"{share}/dbus-1/system-services/{BUS_NAME}.service",
        **{x: f"{share}/dbus-1/interfaces/{x}" for x in XML_FILES},
        f"{BUS_NAME}.policy": f"{share}/polkit-1/actions/{BUS_NAME}.policy",
        "guestnetd.service": f"{unit_dir}/guestnetd.service",
        "guestnetd": f"{prefix}/sbin/guestnetd",
        "guestnetd.catalog": f"{prefix}/lib/systemd/catalog/guestnetd.catalog",
        TMPFILES: f"{prefix}/lib/tmpfiles.d/guestnetd.conf",
        EXAMPLE_CONF: f"{sysconfdir or prefix + '/etc'}/guestnetd/guestnetd.conf",
        "_guestnetctl": f"{share}/zsh/site-functions/_guestnetctl",
    }


@pytest.mark.parametrize("name", [f"{BUS_NAME}.conf", f"{BUS_NAME}.service", *XML_FILES,
                                  f"{BUS_NAME}.policy", "guestnetd.service", "guestnetd", "guestnetd.catalog",
                                  TMPFILES, EXAMPLE_CONF, "_guestnetctl"])
def test_file_installed_where_the_table_says(destdir_install, name):
    unit_dir = pkgconfig_unit_dir("/usr") or "/usr/lib/systemd/system"
    where = expected_locations("/usr", unit_dir, sysconfdir="/etc")[name]
    assert (destdir_install / where.lstrip("/")).is_file(), f"{name} not installed at {where}"


def test_unit_dir_comes_from_pkgconfig(destdir_install):
    unit_dir = pkgconfig_unit_dir("/usr")
    assert unit_dir, "systemd.pc is installed here (Debian: systemd); the default must come from it"
    assert (destdir_install / unit_dir.lstrip("/") / "guestnetd.service").is_file()


def test_static_files_installed_verbatim(destdir_install):
    for repo_file, where in ((f"dbus/{BUS_NAME}.conf", f"usr/share/dbus-1/system.d/{BUS_NAME}.conf"),
                             (f"polkit/{BUS_NAME}.policy", f"usr/share/polkit-1/actions/{BUS_NAME}.policy")):
        assert (destdir_install / where).read_bytes() == (REPO / repo_file).read_bytes()


def test_installed_catalog_is_read_by_journalctl(destdir_install):
    """journalctl --update-catalog, in the install tree as root, knows every MESSAGE_ID the daemon sends."""
    ids = re.findall(r'MESSAGE_ID_\w+ +"([0-9a-f]{32})"', (REPO / "src/message-ids.h").read_text())
    assert len(ids) == 6
    subprocess.run(["journalctl", f"--root={destdir_install}", "--update-catalog"], check=True)
    res = subprocess.run(["journalctl", f"--root={destdir_install}", "--list-catalog", *ids],
                         capture_output=True, text=True, check=True)
    listed = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert sorted(listed) == sorted(ids), res.stdout
    assert all(v.startswith("guestnetd: ") for v in listed.values()), res.stdout


def test_installed_activation_file(destdir_install):
    svc = read_ini(destdir_install / f"usr/share/dbus-1/system-services/{BUS_NAME}.service")
    s = svc["D-BUS Service"]
    assert s["Name"] == BUS_NAME
    assert s["Exec"] == "/usr/sbin/guestnetd"
    assert (destdir_install / "usr/sbin/guestnetd").is_file()
    assert s["User"] == "root"
    # The unit file itself, as installed (not an alias that only `systemctl enable` creates): the
    # bus can hand activation to systemd whether the unit is enabled or not.
    unit_dir = pkgconfig_unit_dir("/usr")
    unit = destdir_install / unit_dir.lstrip("/") / s["SystemdService"]
    assert unit.is_file() and not unit.is_symlink(), f"SystemdService={s['SystemdService']} is not installed"
    assert read_ini(unit)["Service"]["BusName"] == BUS_NAME


def test_installed_unit_names_the_installed_binary(destdir_install):
    unit_dir = pkgconfig_unit_dir("/usr")
    text = (destdir_install / unit_dir.lstrip("/") / "guestnetd.service").read_text()
    assert not re.search(r"@[A-Za-z_]+@", text), "unsubstituted @VARIABLE@ left in the unit"
    unit = read_ini(destdir_install / unit_dir.lstrip("/") / "guestnetd.service")
    assert unit["Service"]["ExecStart"] == "/usr/sbin/guestnetd"
    assert unit["Service"]["BusName"] == BUS_NAME
    assert "Alias" not in unit["Install"]


def test_relocatable_with_prefix(tmp):
    """--prefix=/opt/gnd moves every file under /opt/gnd, the unit dir included (pkg-config's
    /lib/systemd/system would escape the prefix), and the configured files follow."""
    build = tmp / "build-opt"
    meson_setup(build, "--prefix=/opt/gnd")
    installed = installed_map(build)
    want = expected_locations("/opt/gnd", "/opt/gnd/lib/systemd/system")
    # The daemon's default paths follow sysconfdir (the generated header is there after setup).
    assert '#define GUESTNETD_SYSCONFDIR "/opt/gnd/etc"' in (build / "paths.h").read_text()
    for name, where in want.items():
        if name in XML_FILES and name not in installed:
            pytest.fail(f"{name} is not installed (dbus/{name} missing?)")
        assert installed.get(name) == where, f"{name}: {installed.get(name)} != {where}"
    svc = read_ini(build / f"{BUS_NAME}.service")
    assert svc["D-BUS Service"]["Exec"] == "/opt/gnd/sbin/guestnetd"
    unit = read_ini(build / "guestnetd.service")
    assert unit["Service"]["ExecStart"] == "/opt/gnd/sbin/guestnetd"


def test_directory_options_override(tmp):
    build = tmp / "build-opts"
    meson_setup(build, "--prefix=/usr", "-Dsystemdsystemunitdir=/etc/gnd-units",
                "-Ddbuspolicydir=/etc/dbus-1/system.d", "-Dpolkitactionsdir=/etc/gnd-pk",
                "-Ddbussystemservicedir=/etc/gnd-svc", "-Ddbusinterfacesdir=/etc/gnd-if",
                "-Dcatalogdir=/etc/gnd-catalog")
    installed = installed_map(build)
    assert installed["guestnetd.service"] == "/etc/gnd-units/guestnetd.service"
    assert installed[f"{BUS_NAME}.conf"] == f"/etc/dbus-1/system.d/{BUS_NAME}.conf"
    assert installed[f"{BUS_NAME}.policy"] == f"/etc/gnd-pk/{BUS_NAME}.policy"
    assert installed[f"{BUS_NAME}.service"] == f"/etc/gnd-svc/{BUS_NAME}.service"
    assert installed["guestnetd.catalog"] == "/etc/gnd-catalog/guestnetd.catalog"
    for x in XML_FILES:
        assert installed.get(x) == f"/etc/gnd-if/{x}", f"{x} not installed (dbus/{x} missing?)"


def test_sysconfdir_option_moves_config_and_defaults(tmp):
    build = tmp / "build-sysconf"
    meson_setup(build, "--prefix=/usr", "--sysconfdir=/srv/gndconf")
    assert installed_map(build)[EXAMPLE_CONF] == "/srv/gndconf/guestnetd/guestnetd.conf"
    assert '#define GUESTNETD_SYSCONFDIR "/srv/gndconf"' in (build / "paths.h").read_text()


def test_daemon_help_names_the_configured_sysconfdir():
    """The build under test: guestnetd --help shows the defaults meson compiled in."""
    from busenv import daemon_binary
    res = subprocess.run(["meson", "introspect", str(daemon_binary().parents[1]), "--buildoptions"],
                         check=True, capture_output=True, text=True)
    opts = {o["name"]: o["value"] for o in json.loads(res.stdout)}
    etc = str(Path(opts["prefix"]) / opts["sysconfdir"])
    out = subprocess.run([str(daemon_binary()), "--help"], capture_output=True, text=True).stdout
    assert f"(default: {etc}/guestnetd/guestnetd.conf)" in out, out
    assert f"(default: {etc}/guestnetd/guests.d)" in out, out


def test_installed_example_config(destdir_install):
    """/etc/guestnetd/guestnetd.conf: every [Daemon] key of guestnetd.conf(5), commented out, with
    the default the man page gives; and the empty guests.d next to it."""
    text = (destdir_install / "etc/guestnetd/guestnetd.conf").read_text()
    assert (destdir_install / "etc/guestnetd/guests.d").is_dir()
    assert not [line for line in text.splitlines() if line.strip() and not line.startswith(("#", "["))], \
        "a setting is not commented out"
    keys = dict(re.findall(r"^#([A-Za-z]+)=(.*)$", text, re.M))
    scd = (REPO / "man" / "guestnetd.conf.5.scd").read_text()
    daemon = scd[scd.index("# [DAEMON] SECTION"):scd.index("# [GUEST] SECTION")]
    documented = {}
    for key, body in re.findall(r"^\*([A-Za-z]+)=\*\n((?:\t.*\n)+)", daemon, re.M):
        m = re.search(r"Default:\s+\*([^*]+)\*", body.replace("\n\t", " "))
        documented[key] = m.group(1) if m else None
    assert keys == documented


def test_werror_off_for_packagers_on_for_us(tmp):
    """A plain `meson setup` does not turn warnings into errors (a distribution's newer compiler must
    not break the build); every build script of ours does."""
    build = tmp / "build-opt"  # set up by test_relocatable_with_prefix, or now
    if not (build / "build.ninja").exists():
        meson_setup(build, "--prefix=/opt/gnd")
    res = subprocess.run(["meson", "introspect", str(build), "--buildoptions"], check=True, capture_output=True,
                         text=True)
    assert {o["name"]: o["value"] for o in json.loads(res.stdout)}["werror"] is False
    for script in ("scripts/test", "scripts/sanitize", "scripts/fuzz"):
        text = (REPO / script).read_text().replace("\\\n", " ")  # continuation lines joined
        setups = re.findall(r"meson (?:setup|configure) [^\n]*", text)
        assert setups and all("-Dwerror=true" in s for s in setups), (script, setups)
    assert "scripts/test" in (REPO / ".ci/run").read_text()
