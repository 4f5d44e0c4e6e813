"""pytest plugin (``-p otakit.compliance.junitprops``): writes the compliance run's id and
commit (from the ``OTAKIT_RUN_ID`` / ``OTAKIT_RUN_COMMIT`` environment the report sets) into the
JUnit XML's testsuite properties, so the results file names the run that made it."""

from __future__ import annotations

import os

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    from _pytest.junitxml import xml_key  # noqa: PLC0415 - the junitxml plugin's own key

    xml = session.config.stash.get(xml_key, None)
    if xml is None:
        return
    for env, prop in (("OTAKIT_RUN_ID", "otakit_run_id"), ("OTAKIT_RUN_COMMIT", "otakit_commit")):
        if os.environ.get(env):
            xml.add_global_property(prop, os.environ[env])
