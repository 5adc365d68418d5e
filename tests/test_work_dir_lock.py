"""One training per work dir (issue 21, item 8): a second one stops with one line naming the
work dir, the PID holding it and the fix, before it writes anything there; a run killed with
kill -9 leaves no stale lock."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_env
from test_resilience import MAE_CFG, one_clear_error, options, train
from mim_plugins.engine.work_dir_lock import LOCK_NAME, lock_work_dir
from mim_plugins.utils.errors import UserInputError

HOLD = ('import sys, time; from mim_plugins.engine.work_dir_lock import lock_work_dir; '
        'lock = lock_work_dir(sys.argv[1]); print("locked", flush=True); time.sleep(600)')


def test_lock_names_the_holder_and_is_free_after_kill_9(tmp_path):
    work = str(tmp_path / 'work')
    holder = subprocess.Popen([sys.executable, '-c', HOLD, work], cwd=ROOT, env=run_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(UserInputError) as info:
            lock_work_dir(work)
        message = str(info.value)
        assert f"Work dir '{work}' is in use" in message and f'process {holder.pid}' in message
        assert '--work-dir' in message and '\n' not in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = lock_work_dir(work)  # the kernel released the dead process's lock
    assert open(os.path.join(work, LOCK_NAME)).read().strip() == str(os.getpid())
    assert lock_work_dir(work) is lock  # a second runner of this process shares it
    lock.close()


def wait_for(condition, seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert proc.poll() is None, f'exited with {proc.returncode}'
        assert time.time() < deadline, 'timed out'
        time.sleep(0.5)


@pytest.mark.slow
def test_second_training_in_the_same_work_dir_stops_before_writing(tmp_path, tiny_data):
    work = tmp_path / 'work'
    env = run_env()
    env['PYTHONPATH'] = os.pathsep.join([ROOT, os.path.join(ROOT, 'tests')])
    log = open(tmp_path / 'first.log', 'w')
    first = subprocess.Popen([sys.executable, 'tools/train.py', MAE_CFG, '--work-dir', str(work),
                              *options(tiny_data, epochs=1000)],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        dump = work / os.path.basename(MAE_CFG)
        # training has started: the runner is built and its config dumped
        started = lambda: 'Epoch(train)' in (tmp_path / 'first.log').read_text()  # noqa: E731
        wait_for(lambda: dump.exists() and started(), 240, first)
        folders = lambda: {n for n in os.listdir(work) if (work / n).is_dir()}  # noqa: E731
        before = (dump.read_text(), folders())
        second = train('--work-dir', str(work), *options(tiny_data, epochs=2))
        one_clear_error(second, f"Work dir '{work}' is in use", f'process {first.pid}',
                        '--work-dir')
        # nothing of the first run was touched: the same config dump, no new log folder
        assert (dump.read_text(), folders()) == before and first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        log.close()
    third = train('--work-dir', str(work), *options(tiny_data, epochs=1))
    assert third.returncode == 0, third.stderr[-3000:]
