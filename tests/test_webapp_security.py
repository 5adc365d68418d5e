"""The web demo is not a remote shell: a real server (``tools/web_demo.py`` on a free loopback
port, with a password) and real HTTP requests, made as a hostile visitor would.

Every request that could run code names a marker file the payload would create; the test
asserts it never appears. Positive controls (a real checkpoint inside an allowed folder, a
real image upload) show that the refusals are the checks, not a broken server.
"""
import os
import pickle
import signal
import subprocess
import sys

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_env
from test_attention import MAE_CFG, save_tiny_mae
from test_webapp_browser import free_port, wait_until_serving
from mim_plugins.webapp.learned import KMEANS

PASSWORD = 'correct horse battery staple'
DENIED = 'The demo does not open that'
MAX_MB = 0.05  # --max-upload-mb of the server under test: 51200 bytes


class Payload:
    """A pickle that creates ``marker`` when unpickled by a loader that allows it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('secure_web')
    allowed, outside = tmp / 'allowed', tmp / 'outside'
    allowed.mkdir()
    outside.mkdir()
    save_tiny_mae(str(allowed / 'mae.pth'))
    save_tiny_mae(str(outside / 'mae.pth'))
    (allowed / 'escape.pth').symlink_to(outside / 'mae.pth')  # a symlink out of the folder
    port = free_port()
    log = tmp / 'server.log'
    env = dict(run_env(), MIM_DEMO_PASSWORD=PASSWORD)
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, 'tools/web_demo.py', '--port', str(port), '--allow-dir',
             str(allowed), '--max-upload-mb', str(MAX_MB)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        wait_until_serving(url, proc, str(log))
        yield url, tmp, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def upload(url: str, path, name: str) -> str:
    """POST a file to Gradio's upload endpoint as the logged-in visitor: its server path."""
    with httpx.Client(trust_env=False, timeout=30) as http:
        login = http.post(url + 'login/', data=dict(username='demo', password=PASSWORD))
        assert login.status_code == 200, login.text
        with open(path, 'rb') as f:
            response = http.post(url + 'gradio_api/upload', files={'files': (name, f)})
    assert response.status_code == 200, response.text
    return response.json()[0]


def show(client, config: str = '', checkpoint: str = '', centroids: str = '',
         learner_config: str = '', learner_checkpoint: str = '') -> str:
    """The status text of one request of the page's main event (the panels are dropped)."""
    return client.predict(None, config, checkpoint, centroids, 'random', 0.75, 0.5, 0.75, 0,
                          -1, KMEANS, learner_config, learner_checkpoint,
                          api_name='/update')[-1]


@pytest.mark.slow
def test_the_demo_refuses_what_could_run_code_or_reveal_files(demo, tmp_path):
    from gradio_client import Client, handle_file

    url, tmp, proc, log = demo
    allowed, outside = tmp / 'allowed', tmp / 'outside'
    with httpx.Client(trust_env=False, timeout=30) as http:
        # a password: nothing without logging in, uploads included
        assert http.get(url + 'config').status_code == 401
        files = {'files': ('x.png', b'123')}
        assert http.post(url + 'gradio_api/upload', files=files).status_code in (401, 403)
    client = Client(url, auth=('demo', PASSWORD), verbose=False, httpx_kwargs=dict(trust_env=False))
    client.predict(handle_file(str(ROOT + '/mim_plugins/webapp/examples/mnist_val_digit3.png')),
                   api_name='/pick_upload')

    # positive control: a checkpoint inside an allowed folder is drawn
    assert 'MAE on 28x28 images' in show(client, MAE_CFG, str(allowed / 'mae.pth'))

    # 1. a crafted checkpoint uploaded (named like an image), then given as "other checkpoint"
    marker = tmp_path / 'ran_checkpoint'
    evil_ckpt = tmp_path / 'digit.png'
    evil_ckpt.write_bytes(pickle.dumps(Payload(str(marker))))
    server_path = upload(url, evil_ckpt, 'digit.png')
    status = show(client, MAE_CFG, server_path)
    assert DENIED in status and not marker.exists()
    # ... or as a part learner's checkpoint
    status = show(client, MAE_CFG, str(allowed / 'mae.pth'), learner_config=MAE_CFG,
                  learner_checkpoint=server_path)
    assert DENIED in status and not marker.exists()

    # 2. a .py uploaded, then given as the config (Config.fromfile would execute it)
    marker_cfg = tmp_path / 'ran_config'
    evil_cfg = tmp_path / 'cfg.py'
    evil_cfg.write_text(f"import os\nos.system('touch {marker_cfg}')\n_base_ = ['{MAE_CFG}']\n")
    status = show(client, upload(url, evil_cfg, 'cfg.py'), str(allowed / 'mae.pth'))
    assert DENIED in status and not marker_cfg.exists()

    # 3. paths outside the allowed folders: one message, whether the file exists or not
    denied = {show(client, MAE_CFG, path) for path in
              ('../../etc/passwd', 'configs/../../../etc/passwd', '/etc/passwd',
               '/etc/no_such_file_here', str(outside / 'mae.pth'), str(allowed / 'escape.pth'))}
    assert len(denied) == 1 and DENIED in denied.pop()
    for secret in ('/etc/passwd', str(outside)):
        assert secret not in show(client, MAE_CFG, secret)
    assert DENIED in show(client, MAE_CFG, str(allowed / 'mae.pth'), centroids='/etc/passwd')
    assert DENIED in show(client, '/etc/passwd', str(allowed / 'mae.pth'))
    assert DENIED in show(client, MAE_CFG, str(allowed / 'mae.pth'), learner_config='/etc/passwd',
                          learner_checkpoint=str(allowed / 'mae.pth'))

    # Gradio's own file route serves none of the server's other files
    with httpx.Client(trust_env=False, timeout=30) as http:
        http.post(url + 'login/', data=dict(username='demo', password=PASSWORD))
        for path in ('/etc/passwd', str(allowed / 'mae.pth'), ROOT + '/setup.py'):
            assert http.get(url + 'gradio_api/file=' + path).status_code in (403, 404)

    # 4. uploads: an oversized one is refused at the door, a non-image named .png by content
    big = tmp_path / 'big.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(big)
    assert big.stat().st_size > MAX_MB * 2**20
    with httpx.Client(trust_env=False, timeout=30) as http:
        http.post(url + 'login/', data=dict(username='demo', password=PASSWORD))
        with open(big, 'rb') as f:
            refused = http.post(url + 'gradio_api/upload', files={'files': ('big.png', f)})
    assert refused.status_code == 413
    fake = tmp_path / 'photo.png'
    fake.write_text('#!/bin/sh\necho not an image\n')
    client.predict(handle_file(str(fake)), api_name='/pick_upload')
    status = show(client, MAE_CFG, str(allowed / 'mae.pth'))
    assert "Corrupt or unreadable image 'photo.png'" in status and 'whatever its name' in status
    assert not marker.exists() and not marker_cfg.exists()

    # uploads live in the server's own folder, deleted when it stops
    folder = os.path.dirname(os.path.dirname(server_path))
    assert os.path.isdir(folder) and f'Uploads go to {folder}' in log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not os.path.exists(folder) and not os.path.exists(server_path)


@pytest.mark.parametrize('args,env,message', [
    (['--host', '0.0.0.0'], {}, '--host 0.0.0.0 would serve the demo beyond this machine'),
    (['--host', '0.0.0.0', '--remote'], {}, '--remote on 0.0.0.0 needs a password'),
    (['--host', '0.0.0.0', '--remote', '--password-file', '/no/such/file'], {},
     "Password file '/no/such/file' does not exist"),
])
@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_serving_beyond_this_machine_needs_a_flag_and_a_password(args, env, message):
    run = subprocess.run([sys.executable, 'tools/web_demo.py', *args], cwd=ROOT,
                         env={**{k: v for k, v in run_env().items() if k != 'MIM_DEMO_PASSWORD'},
                              **env}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert 'Running on' not in run.stdout


def test_upload_check_reads_content_and_limits_bytes_and_pixels(tmp_path):
    from mim_plugins.utils.errors import UserInputError
    from mim_plugins.webapp.uploads import check_image

    image = tmp_path / 'upload.bin'  # a real PNG under a name that says nothing
    noise = np.random.default_rng(0).integers(0, 255, (100, 120), np.uint8)
    Image.fromarray(noise).save(image, format='PNG')
    assert image.stat().st_size > 10_000
    check_image(str(image), 'upload.bin', max_pixels=12_000)
    with pytest.raises(UserInputError, match=r"'upload.bin' is 120x100 pixels.*up to 11999"):
        check_image(str(image), 'upload.bin', max_pixels=11_999)
    size = image.stat().st_size
    with pytest.raises(UserInputError, match=rf"'upload.bin' is {size} bytes; .* up to 10000 b"):
        check_image(str(image), 'upload.bin', max_bytes=10_000)
    script = tmp_path / 'x.png'
    script.write_bytes(b'GIF89a' + b'\x00' * 100)  # a format the demo does not take
    with pytest.raises(UserInputError, match="Corrupt or unreadable image 'x.png'"):
        check_image(str(script), 'x.png')
