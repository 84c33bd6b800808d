"""`flask-ops`: the console script. `flask-ops init` writes the app description; any other
command line runs flask-ops' tasks as `fab` would (`flask-ops -H web1 deploy`,
`flask-ops --list`), in the project's directory, with no fabfile needed: its `fabric.yaml`
(or `-f FILE`) is read as Fabric reads a project's config."""

import os
import sys

from fabric.main import Fab

from .config import configfile


class FlaskOps(Fab):
    """Fabric's program with flask-ops' tasks built in; the project config is the current
    directory's (Invoke's documented set_project_location/load_project)."""

    def parse_collection(self):
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()


def program():
    from importlib.metadata import PackageNotFoundError, version

    from .tasks import Executor, ns
    try:
        ours = version("flask-ops")
    except PackageNotFoundError:
        ours = "unknown"
    return FlaskOps(name="flask-ops", version=ours, namespace=ns, executor_class=Executor,
                    config_class=configfile.StrictConfig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["init"]:
        from . import __main__ as init
        return init.main(argv)
    program().run(["flask-ops", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
