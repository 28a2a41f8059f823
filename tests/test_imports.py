"""The streaming path never imports training code or its heavy dependencies."""
import subprocess
import sys

from conftest import DATA


def test_listen_and_embed_import_no_training_code(tmp_path):
    code = f"""
import sys
from edgepara.cli import main
assert main(['listen', '--file', r'{DATA / "ravdess_A21_angry.flac"}', '--no-dashboard', '--head', 'emotion']) == 0
assert main(['embed', r'{DATA / "ravdess_A21_angry.flac"}', '--out', r'{tmp_path / "e.npy"}']) == 0
heavy = ('tensorflow', 'keras', 'sklearn', 'torch', 'opensmile', 'resemblyzer', 'openwakeword', 'edgepara.train')
print(sorted({{m for m in sys.modules if m.startswith(heavy)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
