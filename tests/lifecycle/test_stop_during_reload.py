"""`service nova-uwsgi-gateway stop` while the vassals reload leaves no uWSGI behind.

With both vassals enabled, a stop soon after a reload used to return while the
vassal masters lived on as orphans (ppid 1): 4 processes for up to 5 s here on
bookworm, more than 65 s on trixie. Nothing may be left once stop returns.
"""
import pytest

from lifecycle_testbed import CA

LEFT = "ps -eo pid=,ppid=,args= | grep '[u]wsgi-core' || true"


@pytest.fixture(scope="module", autouse=True)
def gateway(testbed):
    testbed.apt("install nova-uwsgi-gateway ooi-uwsgi-gateway")


def serving(testbed, since):
    """:8774 answers and both vassals' 3 workers have loaded since ``since`` (a log mark)."""
    testbed.wait_until("curl -sfk -o /dev/null https://127.0.0.1:8774/", "8774 serving", 120)
    testbed.wait_for_workers(3, "both vassals' workers", since, 120)


@pytest.mark.parametrize("seconds_after_reload", [1, 2, 3])
def test_stop_soon_after_a_reload_leaves_no_uwsgi_process(testbed, seconds_after_reload):
    since = testbed.log_mark()
    testbed.run("service nova-uwsgi-gateway start")
    serving(testbed, since)

    testbed.run(f"service nova-uwsgi-gateway reload && sleep {seconds_after_reload} && "
                "service nova-uwsgi-gateway stop")

    left = testbed.run(LEFT).stdout
    assert not left, f"left running after stop returned:\n{left}\n{testbed.logs()}"
    assert testbed.run(f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {CA} "
                       "-m 10 https://127.0.0.1:8774/", check=False).stdout != "200"
