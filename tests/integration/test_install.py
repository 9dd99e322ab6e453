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


def meson_setup(build, *options):
    subprocess.run(["meson", "setup", str(build), str(REPO), "-Dtests=false", *options],
                   check=True, capture_output=True, text=True)


def installed_map(build):
    """meson introspect --installed: {source or build file: install path}."""
    res = subprocess.run(["meson", "introspect", str(build), "--installed"],
                         check=True, capture_output=True, text=True)
    return {Path(k).name: v for k, v in json.loads(res.stdout).items()}


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


def expected_locations(prefix, unit_dir):
    share = f"{prefix}/share"
    return {
        f"{BUS_NAME}.conf": f"{share}/dbus-1/system.d/{BUS_NAME}.conf",
        f"{BUS_NAME}.service": f"{share}/dbus-1/system-services/{BUS_NAME}.service",
        **{x: f"{share}/dbus-1/interfaces/{x}" for x in XML_FILES},
        f"{BUS_NAME}.policy": f"{share}/polkit-1/actions/{BUS_NAME}.policy",
        "guestnetd.service": f"{unit_dir}/guestnetd.service",
        "guestnetd": f"{prefix}/sbin/guestnetd",
        "guestnetd.catalog": f"{prefix}/lib/systemd/catalog/guestnetd.catalog",
    }


@pytest.mark.parametrize("name", [f"{BUS_NAME}.conf", f"{BUS_NAME}.service", *XML_FILES,
                                  f"{BUS_NAME}.policy", "guestnetd.service", "guestnetd", "guestnetd.catalog"])
def test_file_installed_where_the_table_says(destdir_install, name):
    unit_dir = pkgconfig_unit_dir("/usr") or "/usr/lib/systemd/system"
    where = expected_locations("/usr", unit_dir)[name]
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
    assert s["SystemdService"] == f"dbus-{BUS_NAME}.service"


def test_installed_unit_names_the_installed_binary(destdir_install):
    unit_dir = pkgconfig_unit_dir("/usr")
    text = (destdir_install / unit_dir.lstrip("/") / "guestnetd.service").read_text()
    assert not re.search(r"@[A-Za-z_]+@", text), "unsubstituted @VARIABLE@ left in the unit"
    unit = read_ini(destdir_install / unit_dir.lstrip("/") / "guestnetd.service")
    assert unit["Service"]["ExecStart"] == "/usr/sbin/guestnetd"
    assert unit["Service"]["BusName"] == BUS_NAME
    assert unit["Install"]["Alias"] == f"dbus-{BUS_NAME}.service"


def test_relocatable_with_prefix(tmp):
    """--prefix=/opt/gnd moves every file under /opt/gnd, the unit dir included (pkg-config's
    /lib/systemd/system would escape the prefix), and the configured files follow."""
    build = tmp / "build-opt"
    meson_setup(build, "--prefix=/opt/gnd")
    installed = installed_map(build)
    want = expected_locations("/opt/gnd", "/opt/gnd/lib/systemd/system")
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
