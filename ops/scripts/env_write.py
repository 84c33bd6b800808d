"""Stage the app's next env file (ENV_FILE.new, 0600, the app user's) from JSON on stdin:
{"set": {NAME: value}, "generate": [NAME], "key": digest key}. Generated names keep the
value they have (or get a random one); every other name is what the deploy sets; names no
longer declared are dropped. Values are read from stdin only and never printed.

Arguments: ENV_FILE USER STATE_FILE. The switch moves ENV_FILE.new into place.
"""
import json
import os
import pwd
import secrets
import sys


def current(path):
    values = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f.read().split("\n"):
                name, sep, value = line.partition("=")
                if sep and name:
                    values[name] = value
    except FileNotFoundError:
        pass
    return values


def main(env_file, user, state_file):
    wanted = json.load(sys.stdin)
    old = current(env_file)
    new = dict(wanted["set"])
    for name in wanted["generate"]:
        new[name] = old.get(name) or secrets.token_hex(32)
    staged = env_file + ".new"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(f"{name}={new[name]}\n" for name in sorted(new)))
    os.chmod(staged, 0o600)
    os.chown(staged, pwd.getpwnam(user).pw_uid, 0)
    state = {}
    if os.path.exists(state_file):
        with open(state_file) as f:
            state = json.load(f)
    if state.get("env_key") != wanted["key"]:
        state["env_key"] = wanted["key"]
        with open(state_file + ".new", "w") as f:
            json.dump(state, f)
        os.replace(state_file + ".new", state_file)


if __name__ == "__main__":
    main(*sys.argv[1:4])
