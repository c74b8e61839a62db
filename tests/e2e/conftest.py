import pytest

import harness


def pytest_sessionstart(session):
    harness.clean_artifacts()


@pytest.fixture(scope="session")
def sim():
    s = harness.Sim()
    yield s
    s.stop()


def pytest_addoption(parser):
    parser.addoption("--edges", default="fastly,cloudflare",
                     help="which edges to run the suite against (comma-separated)")


def pytest_generate_tests(metafunc):
    """Every test that starts proxies runs once per edge: the same tests, not a copy."""
    if "edge" in metafunc.fixturenames:
        edges = metafunc.config.getoption("--edges").split(",")
        metafunc.parametrize("edge", edges, scope="function")


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("fastly_only")
        if marker and getattr(item, "callspec", None) and item.callspec.params.get("edge") != "fastly":
            item.add_marker(pytest.mark.skip(reason=f"Fastly only: {marker.args[0]}"))


def pytest_configure(config):
    config.addinivalue_line("markers", "fastly_only(why): the test needs something only Fastly has")


@pytest.fixture
def proxies(sim, edge):
    """Starts proxies on this test's edge and stops them afterwards: `proxies(keys, settings=...)`."""
    started = []

    def start(keys, **kwargs):
        p = harness.EDGES[edge](sim, keys, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
