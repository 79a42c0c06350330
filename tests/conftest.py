"""Shared fixtures of the fast tier: the planted world and one cheap check on it, built once per session.

Layout: ``tests/unit/test_<module>.py`` holds the tests of ``sae_steer_checks/<...>/<module>.py``;
where two modules share a name the subpackage comes first (``test_cli_files``, ``test_report_files``,
``test_data_schema``, ``test_report_schema``), as it does for the statistics modules
(``test_stats_<module>``). ``test_readme``, ``test_public_api`` and ``test_packaging`` test the package
as a whole; ``tests/property`` holds the hypothesis properties and the calibrations.

Tests that read one figure of a planted-world run take ``planted_check`` rather than rerunning
``run_checks``; tests whose point is the default configuration (calibration, the command line's
report) run their own. Session-scoped values are shared by every test of a worker: never modify them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sae_steer_checks.synthetic import PlantedWorld
    from tests.helpers.planted import PlantedCheck


@pytest.fixture(scope="session")
def planted_world() -> PlantedWorld:
    """The planted world with its default config (seed 0): every mechanism planted."""
    from sae_steer_checks.synthetic import WorldConfig, build_world

    return build_world(WorldConfig(seed=0))


@pytest.fixture(scope="session")
def planted_check(planted_world: PlantedWorld) -> PlantedCheck:
    """The planted world's check with the cheap config (``tests.helpers.planted.CHEAP``)."""
    from tests.helpers.planted import planted_check

    return planted_check(planted_world)
