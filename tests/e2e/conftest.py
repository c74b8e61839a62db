import pytest

import harness


def pytest_sessionstart(session):
    harness.clean_artifacts()


@pytest.fixture(scope="session")
def sim():
    s = harness.Sim()
    yield s
    s.stop()


@pytest.fixture
def proxies(sim):
    """Starts proxies for a test and stops them afterwards: `proxies(keys, settings=...)`."""
    started = []

    def start(keys, **kwargs):
        p = harness.Proxy(sim, keys, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
