"""The app's own certificate files, from stdin (JSON: chain, key): DIR/fullchain.pem and
DIR/privkey.pem, root-owned 0600 in a 0700 directory, each replaced atomically. The pair they
replace is kept as *.prev until the deploy finishes, for a restore. The key never appears in
argv or output. Usage: tls_files.py DIR
"""
import json
import os
import shutil
import sys


def write(path, data):
    tmp = path + ".flask-ops-new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _holds(path, data):
    try:
        with open(path) as f:
            return f.read() == data
    except OSError:
        return False


def main(directory):
    files = json.load(sys.stdin)
    if all(_holds(os.path.join(directory, name), files[key])
           for name, key in (("fullchain.pem", "chain"), ("privkey.pem", "key"))) \
            and not files.get("ca_bundle"):
        print("unchanged")  # a balancer that already has the shared certificate
        return
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, key in (("fullchain.pem", "chain"), ("privkey.pem", "key")):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            shutil.copy2(path, path + ".prev")
        write(path, files[key])
    if files.get("ca_bundle"):  # public: the CAs balancers trust app hosts by
        write(os.path.join(directory, "ca-bundle.pem"), files["ca_bundle"])
        os.chmod(os.path.join(directory, "ca-bundle.pem"), 0o644)
    print(f"certificate files installed in {directory}")


if __name__ == "__main__":
    main(sys.argv[1])
