import pytest

from ops.targets import render, upstart


def job(load):
    return next(f.content for f in render.render(load(init="upstart")) if f.kind == "upstart")


def test_rendered_job_parses(load):
    stanzas = upstart.check(job(load))
    assert stanzas["start on"] == ["runlevel [2345]"]
    # uWSGI drops to the app's user itself (uid/gid in the ini), after making its socket
    assert "setuid" not in stanzas and "respawn" in stanzas
    assert stanzas["exec"] == ["/usr/bin/uwsgi --ini /etc/flask-ops/sample/uwsgi.ini"]


@pytest.mark.parametrize("mutation, message", [
    (("respawn\n", "respwan\n"), "unknown stanza"),
    (("chdir /srv", "chdir /srv\nchdir /tmp"), "given twice"),
    (("start on runlevel [2345]\n", ""), "never starts"),
    (("exec /usr/bin/uwsgi", "# exec"), "runs nothing"),
    (("respawn limit 10 5", "respawn limit ten"), "bad arguments"),
    (("chdir /srv", "chdir srv"), "bad arguments"),
    (("env PATH=", "env 1PATH="), "bad arguments"),
    (("exec /usr", "script\n  true\n"), "no 'end script'"),
])
def test_strict_checker_refuses(load, mutation, message):
    text = job(load).replace(*mutation, 1)
    with pytest.raises(upstart.UpstartSyntaxError, match=message):
        upstart.check(text)


def test_script_blocks_are_understood():
    upstart.check('description "x"\nstart on startup\npre-start script\n  mkdir -p /run/x\n'
                  'end script\nscript\n  exec /bin/true\nend script\n')
